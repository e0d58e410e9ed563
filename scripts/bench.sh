#!/bin/sh
# make bench: a bounded load benchmark of the optimized build.
#
# Starts a private PostgreSQL (temp dir) and payd with the mock gateway on
# free ports, then drives it with wrk from a second process on loopback:
# health (HTTP overhead), an authenticated read, an order write, and a full
# checkout (order + confirmed payment). Each run is ${PAYD_BENCH_SECONDS:-10}
# seconds with ${PAYD_BENCH_CONNECTIONS:-32} connections. Results go to
# stdout and bench/last-report.txt, with the targets from bench/README.md.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PAYD_BENCH=1 scripts/deps.sh
secs=${PAYD_BENCH_SECONDS:-10}
conns=${PAYD_BENCH_CONNECTIONS:-32}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/payd-bench.XXXXXX"); chmod 755 "$tmp"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + $$ % 20000)); }
pgport=$(free_port); port=$(free_port)
cleanup() {
  [ -n "${payd_pid:-}" ] && kill -TERM "$payd_pid" 2>/dev/null && wait "$payd_pid" 2>/dev/null
  scripts/pg.sh stop "$tmp/pg"
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
admin=$(scripts/pg.sh start "$tmp/pg" "$pgport")
psql -q "$admin" -c "CREATE DATABASE payd_bench" >/dev/null
cat > "$tmp/payd.conf" <<CONF
[server]
listen = 127.0.0.1:$port
threads = 32
log_level = warn
[database]
url = postgresql://postgres@127.0.0.1:$pgport/payd_bench
pool = 24
[gateway.mock]
module = mock
webhooks = off
[routing]
default = mock
CONF
"$build/payd" migrate -c "$tmp/payd.conf" 2>/dev/null
PAYD_BENCH_KEY=$("$build/payd" apikey create --role admin -c "$tmp/payd.conf" 2>/dev/null)
export PAYD_BENCH_KEY
"$build/payd" serve -c "$tmp/payd.conf" 2>"$tmp/payd.log" &
payd_pid=$!
i=0; until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done
PAYD_BENCH_ORDER=$(curl -s "http://127.0.0.1:$port/v1/orders" -H "Authorization: Bearer $PAYD_BENCH_KEY" \
  -H 'Content-Type: application/json' -d '{"currency":"USD","items":[{"name":"Tea","unit_amount":100}]}' \
  | sed 's/.*"id":"\(ord_[a-z0-9]*\)".*/\1/')
export PAYD_BENCH_ORDER

report=bench/last-report.txt
{
  echo "payd bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, ${secs}s x ${conns} connections"
  for run in "healthz:" "get_order:bench/get_order.lua" "create_order:bench/create_order.lua" "checkout:bench/checkout.lua"; do
    name=${run%%:*}; script=${run#*:}
    path=/healthz; [ "$name" = healthz ] || path=/
    if [ -n "$script" ]; then
      out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$script" "http://127.0.0.1:$port$path")
    else
      out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port$path")
    fi
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    printf '%-14s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
  done
  echo "targets (bench/README.md): healthz >= 20000, get_order >= 5000, create_order >= 1500, checkout >= 1000 req/s"
} | tee "$report"
