#!/usr/bin/env bash
# Builds every libFuzzer target with clang (-fsanitize=fuzzer,address,undefined) and runs each
# for SECONDS (default 600: the 10 minutes of TARGETS.md R5). Not part of CI.
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]   (default: every target)    (needs clang and libclang-rt-14-dev)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
shift || true
out=build/fuzz
mkdir -p "$out"
cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -Iinclude"
common="common/err.c common/log.c common/b64.c common/clock.c common/buf.c common/parse.c"
cacher="cacher/kv.c cacher/render.c cacher/selector.c cacher/filter.c cacher/store.c cacher/ring.c cacher/watcher.c cacher/state.c cacher/cacher.c"
targets=${*:-fuzz_kv fuzz_selector fuzz_etcd_wire fuzz_tokens fuzz_policy}
build() {
    case $1 in
    fuzz_kv) clang $cflags -Icacher $common $cacher tests/fuzz/fuzz_kv.c -o "$out/$1" -ljansson -lpthread ;;
    fuzz_selector) clang $cflags $common cacher/selector.c tests/fuzz/fuzz_selector.c -o "$out/$1" ;;
    fuzz_etcd_wire) clang $cflags -Iupstream $common upstream/wire.c tests/fuzz/$1.c -o "$out/$1" -ljansson ;;
    fuzz_tokens | fuzz_policy) clang $cflags -Ihttp $common http/auth.c tests/fuzz/$1.c -o "$out/$1" -ljansson ;;
    *)
        echo "unknown target $1" >&2
        exit 2
        ;;
    esac
}
for t in $targets; do
    build "$t"
done
failed=0
ntargets=0
for t in $targets; do
    ntargets=$((ntargets + 1))
    mkdir -p "$out/corpus-$t"
    [ -d "tests/fuzz/seeds/$t" ] && cp -n "tests/fuzz/seeds/$t"/* "$out/corpus-$t/"
    echo "== $t for ${secs}s"
    if ! (cd "$out" && UBSAN_OPTIONS=halt_on_error=1 "./$t" -max_total_time="$secs" "corpus-$t" \
        >"$t.log" 2>&1); then
        echo "$t FAILED: see $out/$t.log"
        failed=$((failed + 1))
    fi
    tail -1 "$out/$t.log"
done
echo "$((ntargets - failed)) passed, $failed failed"
[ "$failed" = 0 ]
