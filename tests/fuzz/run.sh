#!/usr/bin/env bash
# Builds every libFuzzer target with clang (-fsanitize=fuzzer,address,undefined) and runs each
# for SECONDS (default 600: the 10 minutes of TARGETS.md R5). Not part of CI.
# Usage: tests/fuzz/run.sh [SECONDS]    (needs clang and libclang-rt-14-dev)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
out=build/fuzz
mkdir -p "$out"
cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -Iinclude"
cacher="cacher/err.c cacher/log.c cacher/b64.c cacher/kv.c cacher/render.c cacher/selector.c cacher/filter.c cacher/store.c cacher/ring.c cacher/watcher.c cacher/cacher.c"
clang $cflags -Icacher $cacher tests/fuzz/fuzz_kv.c -o "$out/fuzz_kv" -ljansson -lpthread
clang $cflags cacher/selector.c tests/fuzz/fuzz_selector.c -o "$out/fuzz_selector"
clang $cflags -Iupstream upstream/wire.c cacher/b64.c tests/fuzz/fuzz_etcd_wire.c -o "$out/fuzz_etcd_wire" -ljansson
failed=0
for t in fuzz_kv fuzz_selector fuzz_etcd_wire; do
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
echo "$((3 - failed)) passed, $failed failed"
[ "$failed" = 0 ]
