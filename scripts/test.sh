#!/bin/sh
# Runs payd's test binaries against a private PostgreSQL and Redis.
#
#   scripts/test.sh BUILD_DIR        e.g. scripts/test.sh build/san
#
# Starts a throwaway PostgreSQL cluster (scripts/pg.sh) and Redis on free
# loopback ports inside a temp dir, exports where they are, runs every
# BUILD_DIR/tests/test_* binary one after the other under a time limit, and
# stops everything it started on exit, also on failure or Ctrl-C.
#
# Environment the tests see:
#   PAYD_TEST_PG_URL      admin URL of the private cluster (database postgres)
#   PAYD_TEST_PG_DIR      the cluster directory (for scripts/pg.sh stop/start)
#   PAYD_TEST_PG_PORT     its port
#   PAYD_TEST_REDIS_URL   redis://127.0.0.1:PORT/0
#   PAYD_TEST_TMP         scratch space; the harness puts payd runs here
#   PAYD_BUILD            absolute BUILD_DIR
#   PAYD_ROOT             the repository root
#
# Each binary prints TAP (CMOCKA_MESSAGE_OUTPUT=TAP). A binary that crashes
# or exits nonzero without reporting a failed test counts as one failure.
# For a failed test, the tail of each payd log the harness announced
# ("# payd log: PATH") while that test ran is printed.
#
# The last line is always "N passed, N failed"; the exit status is nonzero
# when anything failed.
#
# Knobs: PAYD_TEST_FILTER (shell glob on the binary name, default test_*),
# PAYD_TEST_TIMEOUT (seconds per binary, default 300), PAYD_TEST_KEEP=1
# (keep the temp dir for inspection).
set -u

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" 2>/dev/null && pwd) || { echo "test.sh: no build dir $1" >&2; exit 2; }
TIMEOUT=${PAYD_TEST_TIMEOUT:-300}
FILTER=${PAYD_TEST_FILTER:-test_*}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/payd-test.XXXXXX") || exit 2
# postgres (pg.sh runs the cluster as that user when we are root) must be
# able to enter the temp dir to reach the cluster directory.
chmod 755 "$tmp"
pgdir=$tmp/pg
redis_pid=
pg_started=0

# Stops everything this script started. Only pids we recorded are killed.
cleanup() {
  trap - EXIT INT TERM
  # payd processes a crashed test left behind. The harness removes a pid
  # file once it has reaped the child; the command line is checked too, so
  # a reused pid is never killed.
  for f in "$tmp"/work/*/payd.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null)
    case "$pid" in '' | *[!0-9]*) continue ;; esac
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(dirname "$f")/payd.conf"; then
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null
    i=0
    while kill -0 "$redis_pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$redis_pid" 2>/dev/null
  fi
  [ "$pg_started" = 1 ] && "$ROOT/scripts/pg.sh" stop "$pgdir"
  if [ "${PAYD_TEST_KEEP:-0}" = 1 ]; then
    echo "test.sh: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
interrupted=0
trap cleanup EXIT
# Ctrl-C also reaches the running test binary (it runs in the foreground
# process group); the loop then stops and the summary counts it.
trap 'interrupted=1' INT TERM

# Prints a free TCP port on 127.0.0.1 that this script has not handed out.
used_ports=
port_taken() {
  case " $used_ports " in *" $1 "*) return 0 ;; esac
  ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}
free_port() {
  p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null)
  case "$p" in '' | *[!0-9]*) p=40000 ;; esac
  tries=0
  while port_taken "$p"; do
    tries=$((tries + 1))
    [ $tries -gt 500 ] && { echo "test.sh: no free port" >&2; return 1; }
    p=$(( ($$ * 31 + tries * 7919) % 20000 + 40000 ))
  done
  used_ports="$used_ports $p"
  echo "$p"
}

pgport=$(free_port) || exit 1
rport=$(free_port) || exit 1

echo "test.sh: PostgreSQL on 127.0.0.1:$pgport, Redis on 127.0.0.1:$rport, temp $tmp"
pg_started=1
PAYD_TEST_PG_URL=$("$ROOT/scripts/pg.sh" start "$pgdir" "$pgport") || {
  echo "test.sh: PostgreSQL did not start" >&2
  [ -f "$pgdir/postgres.log" ] && tail -n 30 "$pgdir/postgres.log" >&2
  echo "0 passed, 1 failed"
  exit 1
}

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$tmp/redis.pid" --dir "$tmp" \
  --logfile "$tmp/redis.log" >/dev/null 2>&1
i=0
while [ ! -s "$tmp/redis.pid" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
redis_pid=$(cat "$tmp/redis.pid" 2>/dev/null)
while [ -n "$redis_pid" ] && ! ss -Hltn "sport = :$rport" 2>/dev/null | grep -q . && [ $i -lt 100 ]; do
  sleep 0.1; i=$((i + 1))
done
if [ -z "$redis_pid" ] || ! ss -Hltn "sport = :$rport" 2>/dev/null | grep -q .; then
  echo "test.sh: Redis did not start" >&2
  [ -f "$tmp/redis.log" ] && tail -n 30 "$tmp/redis.log" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

mkdir -p "$tmp/work" "$tmp/logs"
export PAYD_TEST_PG_URL PAYD_TEST_PG_DIR="$pgdir" PAYD_TEST_PG_PORT="$pgport"
export PAYD_TEST_REDIS_URL="redis://127.0.0.1:$rport/0"
export PAYD_TEST_TMP="$tmp/work" PAYD_BUILD="$BUILD" PAYD_ROOT="$ROOT"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Leak reports from third-party libraries only; payd's own leaks are fixed.
[ -f "$ROOT/tests/lsan.supp" ] &&
  export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
export CMOCKA_MESSAGE_OUTPUT=TAP

passed=0
failed=0
failures=""

for bin in "$BUILD"/tests/$FILTER; do
  [ "$interrupted" = 1 ] && break
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  log=$tmp/logs/$name.log
  echo "=== $name"
  # Live output, and the exit status through a file (a pipe would lose it).
  { (cd "$ROOT" && timeout --foreground -k 10 "$TIMEOUT" "$bin"; echo $? >"$log.rc") 2>&1; } | tee "$log"
  rc=$(cat "$log.rc" 2>/dev/null || echo 1)

  p=$(grep -cE '^ok [0-9]+' "$log")
  f=$(grep -cE '^not ok [0-9]+' "$log")
  passed=$((passed + p))
  failed=$((failed + f))
  # Failing tests by name, each followed by the payd logs it announced.
  awk -v bin="$name" '
    /^# payd log: / { logs = logs " " substr($0, 13); next }
    /^ok [0-9]+/ { logs = ""; next }
    /^not ok [0-9]+/ {
      t = $0; sub(/^not ok [0-9]+ *-? */, "", t)
      print bin ": " t "\t" logs; logs = ""
    }' "$log" >"$log.failed"
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    case $rc in
      124) why="timed out after ${TIMEOUT}s" ;;
      137) why="killed" ;;
      *) why="exited with status $rc (crash, sanitizer report or setup failure)" ;;
    esac
    failed=$((failed + 1))
    printf '%s: %s\t%s\n' "$name" "$why" \
      "$(sed -n 's/^# payd log: //p' "$log" | tail -n 3 | tr '\n' ' ')" >>"$log.failed"
  fi
  if [ -s "$log.failed" ]; then
    failures="$failures $log.failed"
  fi
done

if [ -n "$failures" ]; then
  echo
  echo "=== failures"
  for ff in $failures; do
    while IFS="$(printf '\t')" read -r what logs; do
      echo "FAIL $what"
      for l in $logs; do
        [ -f "$l" ] || continue
        echo "--- tail of $l"
        tail -n 40 "$l" | sed 's/^/    /'
      done
    done <"$ff"
  done
fi

if [ "$interrupted" = 1 ]; then
  echo "FAIL interrupted"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
