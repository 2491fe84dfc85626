#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined) and runs each
# for SECONDS (default 600: the 10 minutes of TARGETS.md R5), one after another. CI runs each
# for a few seconds (tests/run.sh fuzz), from the seeds.
# Usage: tests/fuzz/run.sh [TARGET] [SECONDS]    (needs clang and libclang-rt-14-dev)
#   TARGET: fuzz_kv, fuzz_selector, fuzz_etcd_wire, fuzz_route, fuzz_query, fuzz_tokens,
#   fuzz_policy, fuzz_etcd_req, or all (default).
# Logs, corpora and crash files go to build/fuzz/ (see tests/fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
all="fuzz_kv fuzz_selector fuzz_etcd_wire fuzz_route fuzz_query fuzz_tokens fuzz_policy fuzz_etcd_req"
target=all
case "${1:-}" in
    fuzz_*|all) target=$1; shift ;;
esac
secs=${1:-600}
[ "$target" = all ] && targets=$all || targets=$target
out=build/fuzz
mkdir -p "$out"
cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -Iinclude"
# Every file of common/ and cacher/: a file added there is fuzzed without a change here.
common=$(echo common/*.c)
cacher=$(echo cacher/*.c)
http="http/util.c http/resources.c http/route.c http/query.c"
build() {
    case "$1" in
    fuzz_kv) clang $cflags -Icacher $common $cacher tests/fuzz/fuzz_kv.c -o "$out/$1" \
        -ljansson -lpthread ;;
    fuzz_selector) clang $cflags $common cacher/selector.c tests/fuzz/fuzz_selector.c -o "$out/$1" ;;
    fuzz_etcd_wire) clang $cflags -Iupstream $common upstream/wire.c tests/fuzz/fuzz_etcd_wire.c \
        -o "$out/$1" -ljansson ;;
    fuzz_route|fuzz_query) clang $cflags -Ihttp $common cacher/selector.c $http \
        "tests/fuzz/$1.c" -o "$out/$1" -ljansson -lpthread ;;
    fuzz_tokens|fuzz_policy) clang $cflags -Ihttp $common http/auth.c "tests/fuzz/$1.c" \
        -o "$out/$1" -ljansson ;;
    fuzz_etcd_req) clang $cflags -Ihttp $common http/etcd_req.c tests/fuzz/fuzz_etcd_req.c \
        -o "$out/$1" -ljansson -lpthread ;;
    *) echo "unknown target $1 (one of: $all)" >&2; exit 2 ;;
    esac
}
failed=0
n=0
for t in $targets; do
    build "$t"
    n=$((n + 1))
    mkdir -p "$out/corpus-$t"
    [ -d "tests/fuzz/seeds/$t" ] && cp -n "tests/fuzz/seeds/$t"/* "$out/corpus-$t/"
    echo "== $t for ${secs}s"
    if ! (cd "$out" && UBSAN_OPTIONS=halt_on_error=1 "./$t" -max_total_time="$secs" "corpus-$t" \
        >"$t.log" 2>&1); then
        echo "$t FAILED: see $out/$t.log"
        failed=$((failed + 1))
    fi
    grep -E '^(#[0-9]+|Done)' "$out/$t.log" | tail -2
done
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
