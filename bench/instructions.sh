#!/usr/bin/env bash
# Instructions per proxied request: gatehouse vs nginx, counted, not timed.
#
# Each proxy runs under valgrind's callgrind (one tokio worker; nginx as a
# single process) in front of the same small-body nginx upstream. After a
# warm-up of WARM requests the counters are zeroed, N requests are sent with
# h2load (HTTP/1.1 over plain TCP and over TLS, HTTP/2 over TLS; 16
# keep-alive connections), and the proxy's instructions are dumped and
# divided by N. The count does not move with the machine's load or clock,
# so it compares two builds (or a change and its parent) on a noisy VM
# where requests/s move by ±10% between runs: a difference of 1% is real.
# It is not a throughput figure (cache misses, system calls and wake-ups
# are not in it): `bench/proxy.sh` measures those.
#
# Usage: bench/instructions.sh [requests] [gatehouse binary]
#   GATEHOUSE=path/to/other/build bench/instructions.sh   # compare builds
# Contenders: nginx proxy_pass, gatehouse's public route, and bench/floor
# (the smallest hyper proxy that sends the headers a Pomerium upstream
# expects: what gatehouse's own work is measured against).
# Prints one row per contender and the ratio to nginx on the same transport;
# CALLGRIND_KEEP=dir keeps the profiles (callgrind_annotate FILE shows where
# the instructions go).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

N=${1:-20000}
WARM=${WARM:-3000}
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v valgrind >/dev/null || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -n "${2:-${GATEHOUSE:-}}" ]; then
  GATEHOUSE=${2:-$GATEHOUSE}
  cargo build --release -q -p gatehouse-floor
else
  cargo build --release -q -p gatehouse -p gatehouse-floor
  GATEHOUSE=$PWD/target/release/gatehouse
fi
FLOOR=$PWD/target/release/gatehouse-floor

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "${CALLGRIND_KEEP:-}" ]; then
    mkdir -p "$CALLGRIND_KEEP" && cp "$WORK"/*.cg.* "$CALLGRIND_KEEP"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
UP=$(free_port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=bench.localhost \
  -addext subjectAltName=DNS:bench.localhost 2>/dev/null

nginx_conf() { # name master(on|off) server-blocks
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1.conf" <<NGX
worker_processes 1;
daemon off;
master_process $2;
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1/body;
  proxy_temp_path $WORK/$1/proxy;
  fastcgi_temp_path $WORK/$1/fcgi;
  uwsgi_temp_path $WORK/$1/uwsgi;
  scgi_temp_path $WORK/$1/scgi;
  keepalive_requests 1000000;
  $3
}
NGX
}

nginx_conf up on "server { listen 127.0.0.1:$UP; location / { return 200 'hello from upstream\n'; } }"
"$NGINX" -c "$WORK/up.conf" > "$WORK/up.log" 2>&1 &
PIDS+=($!)

# Counts the instructions of the process started by "$@" (under callgrind)
# for N requests to URL. Prints: instructions per request.
count() { # name mode(h1|h2) url cmd...
  local name=$1 mode=$2 url=$3
  shift 3
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.cg.%p" "$@" > "$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local args=(-c 16 -H ':authority: bench.localhost')
  [ "$mode" = h1 ] && args+=(--h1) || args+=(-m 10)
  local up=""
  for _ in $(seq 200); do
    if curl -sk -o /dev/null -H 'Host: bench.localhost' "$url"; then up=1; break; fi
    sleep 0.2
  done
  [ -n "$up" ] || { echo "$name: did not start" >&2; tail -5 "$WORK/$name.log" >&2; exit 1; }
  h2load -n "$WARM" "${args[@]}" "$url" > /dev/null 2>&1
  callgrind_control -z "$pid" > /dev/null 2>&1
  h2load -n "$N" "${args[@]}" "$url" > "$WORK/$name.load" 2>&1
  callgrind_control -d "$pid" > /dev/null 2>&1
  local ok
  ok=$(awk '/^status codes:/ {print $3}' "$WORK/$name.load")
  if [ "$ok" != "$N" ]; then
    echo "$name: $ok of $N answers were 2xx" >&2
    cat "$WORK/$name.load" >&2
    exit 1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local ir
  ir=$(grep -h '^totals:' "$WORK/$name.cg.$pid".1 | awk '{print $2}')
  awk -v ir="$ir" -v n="$N" 'BEGIN { printf "%.0f\n", ir / n }'
}

gh_conf() { # file port tls
  {
    gatehouse_listener "$2" "$3"
    cat <<YAML
log_level: warn
routes:
  - from: https://bench.localhost
    to: http://127.0.0.1:$UP
    allow_public_unauthenticated_access: true
YAML
  } > "$1"
}

PROXY_LOC="proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";"
UPSTREAM_BLOCK="upstream backend { server 127.0.0.1:$UP; keepalive 64; keepalive_requests 1000000; }"

declare -A IR=()
run() { # name mode tls(0|1) kind(nginx|gatehouse|floor)
  local name=$1 mode=$2 tls=$3 kind=$4 port scheme=http
  port=$(free_port)
  [ "$tls" = 1 ] && scheme=https
  if [ "$kind" = nginx ]; then
    # (`listen ... http2`: the spelling of Debian 12's nginx 1.22)
    local listen="listen 127.0.0.1:$port"
    [ "$tls" = 1 ] && listen="$listen ssl"
    [ "$mode" = h2 ] && listen="$listen http2"
    [ "$tls" = 1 ] && listen="$listen; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem"
    nginx_conf "$name" off "$UPSTREAM_BLOCK
  server { $listen; location / { $PROXY_LOC } }"
    IR[$name]=$(count "$name" "$mode" "$scheme://127.0.0.1:$port/" "$NGINX" -c "$WORK/$name.conf")
  elif [ "$kind" = floor ]; then
    # (The certificate by the environment of valgrind itself: under `env`
    # only `env` would be counted.)
    if [ "$tls" = 1 ]; then
      IR[$name]=$(TLS_CERT=$WORK/cert.pem TLS_KEY=$WORK/key.pem count "$name" "$mode" \
        "$scheme://127.0.0.1:$port/" "$FLOOR" "127.0.0.1:$port" "127.0.0.1:$UP")
    else
      IR[$name]=$(count "$name" "$mode" "$scheme://127.0.0.1:$port/" \
        "$FLOOR" "127.0.0.1:$port" "127.0.0.1:$UP")
    fi
  else
    gh_conf "$WORK/$name.yaml" "$port" "$tls"
    IR[$name]=$(TOKIO_WORKER_THREADS=1 count "$name" "$mode" "$scheme://127.0.0.1:$port/" \
      "$GATEHOUSE" run -c "$WORK/$name.yaml")
  fi
  printf '  %-12s %8s instructions/request\n' "$name" "${IR[$name]}" >&2
}

echo "instructions per request, $N requests after $WARM, 16 connections (callgrind)" >&2
run nginx h1 0 nginx
run public h1 0 gatehouse
run floor h1 0 floor
run nginx-tls h1 1 nginx
run public-tls h1 1 gatehouse
run floor-tls h1 1 floor
run h2-nginx h2 1 nginx
run h2-public h2 1 gatehouse

row() { # label name base
  awk -v l="$1" -v a="${IR[$2]}" -v b="${IR[$3]}" \
    'BEGIN { printf "%-40s %12d %10.2f\n", l, a, a / b }'
}
printf '\n%-40s %12s %10s\n' "contender (lower is better)" "instr/req" "x nginx"
row "nginx proxy_pass, HTTP" nginx nginx
row "gatehouse public, HTTP" public nginx
row "floor (hyper + Pomerium headers), HTTP" floor nginx
row "nginx proxy_pass, TLS" nginx-tls nginx-tls
row "gatehouse public, TLS" public-tls nginx-tls
row "floor (hyper + Pomerium headers), TLS" floor-tls nginx-tls
row "nginx http2" h2-nginx h2-nginx
row "gatehouse HTTP/2 public" h2-public h2-nginx
