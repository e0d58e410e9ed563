#!/bin/sh
# Runs payd's libFuzzer targets, each for a bounded time (`make fuzz`).
#
#   scripts/fuzz.sh [BUILD_DIR]        default build/fuzz
#
# For each BUILD_DIR/fuzz_* binary, one after the other on one core:
#   1. every reproducer kept in tests/fuzz/crashes/<target>/ is run once,
#      so a fixed crash that comes back fails at once;
#   2. the fuzzer runs for PAYD_FUZZ_SECONDS, starting from the seeds in
#      tests/fuzz/corpus/<target>/ (read only) and the inputs earlier runs
#      found, kept in BUILD_DIR/corpus/<target>/ (new ones are added there).
# A crash, leak, timeout or out-of-memory is written to
# BUILD_DIR/artifacts/<target>/ and the run counts as failed; the log of
# every target is BUILD_DIR/logs/<target>.log.
#
# Knobs:
#   PAYD_FUZZ_SECONDS   seconds per target (default 20)
#   PAYD_FUZZ_TARGETS   space-separated names (default: every fuzz_* binary)
#   PAYD_FUZZ_RSS_MB    memory limit per target (default 2048)
#   PAYD_FUZZ_TIMEOUT   seconds one input may take (default 10)
#   PAYD_FUZZ_ARGS      extra libFuzzer flags, e.g. "-max_len=65536"
#
# Prints one line per target (runs, exec/s, coverage) and a last line
# "N passed, N failed"; exits nonzero when anything failed.
set -u

BUILD=${1:-build/fuzz}
SECONDS_EACH=${PAYD_FUZZ_SECONDS:-20}
RSS=${PAYD_FUZZ_RSS_MB:-2048}
TIMEOUT=${PAYD_FUZZ_TIMEOUT:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}

if [ -n "${PAYD_FUZZ_TARGETS:-}" ]; then
    targets=$PAYD_FUZZ_TARGETS
else
    targets=$(cd "$BUILD" 2>/dev/null && ls fuzz_* 2>/dev/null)
fi
if [ -z "$targets" ]; then
    echo "fuzz: no targets in $BUILD (run make fuzz-build)" >&2
    exit 1
fi

mkdir -p "$BUILD/logs" "$BUILD/corpus" "$BUILD/artifacts"
passed=0
failed=0
failures=""

# The last value of a libFuzzer status field ("exec/s: 1234") in a log.
field() {
    grep -o "$1: [0-9]*" "$2" | tail -n 1 | sed 's/.*: //'
}

for t in $targets; do
    bin="$BUILD/$t"
    log="$BUILD/logs/$t.log"
    art="$BUILD/artifacts/$t"
    corpus="$BUILD/corpus/$t"
    seeds="tests/fuzz/corpus/$t"
    crashes="tests/fuzz/crashes/$t"
    if [ ! -x "$bin" ]; then
        echo "FAIL $t: $bin is missing"
        failed=$((failed + 1))
        failures="$failures $t"
        continue
    fi
    mkdir -p "$art" "$corpus"
    : >"$log"

    # 1. Known crashes must stay fixed.
    if [ -d "$crashes" ] && [ -n "$(ls -A "$crashes" 2>/dev/null)" ]; then
        if ! "$bin" -rss_limit_mb="$RSS" -timeout="$TIMEOUT" "$crashes"/* \
                </dev/null >>"$log" 2>&1; then
            echo "FAIL $t: a reproducer in $crashes still crashes"
            grep -E "^(==[0-9]+==ERROR|SUMMARY|INVARIANT|.*runtime error)" "$log" | head -n 5 | sed 's/^/    /'
            echo "    log: $log"
            failed=$((failed + 1))
            failures="$failures $t"
            continue
        fi
    fi

    # 2. Fuzz. Seeds are read only; new inputs go to $corpus.
    set -- "$corpus"
    [ -d "$seeds" ] && set -- "$@" "$seeds"
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$SECONDS_EACH" -rss_limit_mb="$RSS" \
        -timeout="$TIMEOUT" -artifact_prefix="$art/" -print_final_stats=1 \
        ${PAYD_FUZZ_ARGS:-} "$@" </dev/null >>"$log" 2>&1
    rc=$?
    runs=$(grep 'stat::number_of_executed_units' "$log" | tail -n 1 | sed 's/.*: *//')
    speed=$(grep 'stat::average_exec_per_sec' "$log" | tail -n 1 | sed 's/.*: *//')
    cov=$(field cov "$log")
    ft=$(field ft "$log")
    if [ "$rc" -eq 0 ]; then
        echo "ok   $t: ${runs:-?} runs, ${speed:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}"
        passed=$((passed + 1))
    else
        echo "FAIL $t (exit $rc): see $log"
        grep -E "^(==[0-9]+==ERROR|SUMMARY|INVARIANT|.*runtime error|artifact_prefix|Test unit written)" "$log" \
            | head -n 8 | sed 's/^/    /'
        echo "    reproduce: $bin <artifact>; minimize: $bin -minimize_crash=1 -runs=100000 <artifact>"
        failed=$((failed + 1))
        failures="$failures $t"
    fi
done

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
