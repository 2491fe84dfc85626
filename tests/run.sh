#!/usr/bin/env bash
# Checks the code's format, then builds wcached and runs every test suite, in up to three builds:
#   format     every C file as the checked-in .clang-format writes it (clang-format --dry-run)
#   plain      -Werror, the whole suite
#   asan       -Db_sanitize=address,undefined (UBSan findings fatal), the whole suite
#   tsan       -Db_sanitize=thread: the concurrency runner and the suites that can run under it
#   fuzz       every libFuzzer target for FUZZ_SECONDS (default 10) from its seeds: the short
#              form of tests/fuzz/run.sh's 10-minute runs
# Not in `all` (it takes several minutes more):
#   valgrind   the plain build's end-to-end C suites with every daemon they start run under
#              valgrind's memcheck (tests/valgrind-wcached.sh); fails on any report
# Usage: tests/run.sh [format|plain|asan|tsan|fuzz|all|valgrind]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export CRITERION_JOBS=${CRITERION_JOBS:-2}

run_build() {
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" -Dwerror=true "$@"
    fi
    ninja -C "$dir"
    meson test -C "$dir" --print-errorlogs --num-processes 2
}

check_format() {
    git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
    echo "format: every C file as .clang-format writes it"
}

# Each daemon writes valgrind's report to a file of its own; any report that is not empty
# fails the step, whatever the suite made of the daemon's exit status.
run_valgrind() {
    [ -f build/plain/build.ninja ] || meson setup build/plain -Dwerror=true
    ninja -C build/plain
    local logs
    logs=$(mktemp -d /tmp/wcached-valgrind.XXXXXX)
    WCACHED_WRAP=$PWD/tests/valgrind-wcached.sh WCACHED_VALGRIND_LOGS=$logs \
        meson test -C build/plain --print-errorlogs --num-processes 1 --timeout-multiplier 4 \
        integration/daemon integration/faults integration/relist integration/restart
    local bad
    bad=$(find "$logs" -type f -size +0 | sort)
    if [ -n "$bad" ]; then
        for f in $bad; do echo "== $f" && cat "$f"; done
        echo "valgrind: reports in $(echo "$bad" | wc -l) daemon run(s)" >&2
        return 1
    fi
    echo "valgrind: $(find "$logs" -type f | wc -l) daemon runs, no report"
    rm -rf "$logs"
}

case $what in
format | all) check_format ;;&
plain | all) run_build build/plain ;;&
asan | all) run_build build/asan -Db_sanitize=address,undefined -Db_lundef=false ;;&
tsan | all) run_build build/tsan -Db_sanitize=thread -Db_lundef=false ;;&
fuzz | all) tests/fuzz/run.sh all "${FUZZ_SECONDS:-10}" ;;
valgrind) run_valgrind ;;
format | plain | asan | tsan) ;;
*)
    echo "usage: tests/run.sh [format|plain|asan|tsan|fuzz|all|valgrind]" >&2
    exit 2
    ;;
esac
