#!/usr/bin/env bash
# The quick start with its ports taken: it says in one line which port is taken and which
# variable moves it, exits 1 at once, and starts and leaves nothing. The port is held by a
# wcached of the build under test (any listener would do).
set -euo pipefail
src=${WCACHED_SOURCE:?} bin=${WCACHED_BIN:?}
log=$(mktemp)
"$bin" --listen 127.0.0.1:0 --etcd-endpoints http://127.0.0.1:1 2>"$log" &
holder=$!
trap 'kill $holder 2>/dev/null; rm -f "$log"' EXIT
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "FAIL: the holder did not listen"; exit 1; }

fails=0
# expect VARS... -- MESSAGE: the quick start with VARS must fail with MESSAGE, and start nothing.
expect() {
    local msg=${*: -1} before after out rc=0
    before=$(find /tmp -maxdepth 1 -name 'wcached-quickstart.*' | wc -l)
    out=$(env "${@:1:$#-1}" SKIP_INSTALL=1 timeout 20 bash "$src/deploy/quickstart.sh" 2>&1) || rc=$?
    after=$(find /tmp -maxdepth 1 -name 'wcached-quickstart.*' | wc -l)
    if [ "$rc" != 1 ] || [[ "$out" != *"$msg"* ]] || [ "$before" != "$after" ] ||
        [[ "$out" == *"starting"* ]]; then
        echo "FAIL: ${*:1:$#-1}: exit $rc, wanted 1 and '$msg'; it said: $out"
        fails=$((fails + 1))
    else
        echo "ok: ${*:1:$#-1}: $out"
    fi
}
free=$((port + 7)) # the quick start itself checks it; only the taken one matters here
expect WCACHED_PORT="$port" ETCD_PORT="$free" "port $port on 127.0.0.1 is taken; set WCACHED_PORT"
expect WCACHED_PORT="$free" ETCD_PORT="$port" "port $port on 127.0.0.1 is taken; set ETCD_PORT"
expect WCACHED_PORT="$free" ETCD_PORT="$((port - 1))" "port $port on 127.0.0.1 is taken; set ETCD_PORT (its peer port"
echo "$((3 - fails)) passed, $fails failed"
[ "$fails" = 0 ]
