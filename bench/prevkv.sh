#!/usr/bin/env bash
# What asking etcd for prev_kv cost upstream, measured on the wcached that asked for it and on
# the one that does not: bytes per event on the watch stream, and CPU per event in wcached and
# in etcd.
#
#   bench/prevkv.sh [--events N] [--rounds R] [--rate R] [--old REV] [--out FILE]
#
# Builds the working tree and REV (default: the commit before the one that dropped prev_kv from
# the watch) in release, side by side. Then, ROUNDS times and interleaved, each on a fresh etcd
# on loopback (data dir in /dev/shm): no watcher at all (what etcd spends on the writes alone),
# the old wcached, the new wcached, both with default flags and --etcd-prefix /bench/. wcload
# puts N ~1 KiB JSON values at RATE/s over 1,000 keys (the first 1,000 puts create, the others
# update: only an update has a prev_kv). CPU is utime+stime from /proc/PID/stat, from before the
# first put until wcached holds the last one (a list with resourceVersionMatch=NotOlderThan).
# Bytes are counted once, with two plain curl watches on etcd's gateway sending wcached's own
# create_request with and without prev_kv. Prints one RESULT line per run, then the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

events=20000 rounds=5 rate=1000 old='' out=''
while [ $# -gt 0 ]; do
    case $1 in
    --events) events=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --rate) rate=${2:?}; shift ;;
    --old) old=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    *) echo "usage: bench/prevkv.sh [--events N] [--rounds R] [--rate R] [--old REV] [--out FILE]" >&2
       exit 2 ;;
    esac
    shift
done
if [ -z "$old" ]; then
    # The last commit that changed a line asking for prev_kv dropped it: compare with its parent.
    drop=$(git log -1 --format=%H -G'prev_kv\\":true' -- upstream/etcd.c)
    old=$(git rev-parse "$drop^")
fi
old=$(git rev-parse --short "$old")
out=${out:-/dev/null}

tmp=$(mktemp -d /tmp/wcprevkv.XXXXXX)
data=$(mktemp -d /dev/shm/wcprevkv.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp" "$data"
}
trap cleanup EXIT INT TERM

echo "== building the working tree and $old (release)"
[ -f build/release/build.ninja ] || meson setup build/release --buildtype=release >/dev/null
ninja -C build/release >/dev/null
mkdir -p "$tmp/old"
git archive "$old" | tar -x -C "$tmp/old"
meson setup "$tmp/old/build" "$tmp/old" --buildtype=release -Dtests=disabled >/dev/null
ninja -C "$tmp/old/build" daemon/wcached >/dev/null
new_bin=$root/build/release/daemon/wcached
old_bin=$tmp/old/build/daemon/wcached
wcload=$root/build/release/bench/wcload
# Its create_request's words (the etcd API that wcached serves writes "prev_kv" too).
grep -qF '"prev_kv":true' "$old_bin" || { echo "$old's wcached does not ask for prev_kv" >&2; exit 1; }
! grep -qF '"prev_kv":true' "$new_bin" || { echo "the working tree's wcached asks for prev_kv" >&2; exit 1; }

# free_port and cpu_ticks
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
etcd_port=$(free_port 23379)
wc_port=$(free_port 28380)
ETCD=127.0.0.1:$etcd_port WC=127.0.0.1:$wc_port
b64() { printf '%s' "$1" | base64 -w0; }
hz=$(getconf CLK_TCK)

etcd_pid=
fresh_etcd() {
    rm -rf "$data/etcd"
    etcd --name prevkv --data-dir "$data/etcd" \
        --listen-client-urls "http://$ETCD" --advertise-client-urls "http://$ETCD" \
        --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
        --initial-cluster "prevkv=http://127.0.0.1:$((etcd_port + 1))" \
        --log-level error >"$tmp/etcd.log" 2>&1 &
    etcd_pid=$!
    pids+=("$etcd_pid")
    for _ in $(seq 100); do curl -fs "http://$ETCD/health" >/dev/null && return; sleep 0.1; done
    echo "etcd did not start" >&2
    exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The revision of etcd's last write.
etcd_rev() {
    curl -fs "http://$ETCD/v3/kv/range" -d "{\"key\":\"$(b64 /)\",\"keys_only\":true}" |
        sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p'
}

# Puts $events values under /bench/$1/ through etcd's gateway.
write_all() {
    "$wcload" --peer etcd --workload fanout --server "$ETCD" --etcd "$ETCD" --run "$1" \
        --readers 0 --events "$events" --rate "$rate" --timeout 60 |
        sed -n 's/.* rate_done=\([0-9.-]*\).*/\1/p'
}

# One run: etcd, the variant's wcached (none, old or new), the writes; prints a RESULT line.
run() {
    local variant=$1 round=$2 bin='' wc_pid=''
    fresh_etcd
    case $variant in old) bin=$old_bin ;; new) bin=$new_bin ;; esac
    if [ -n "$bin" ]; then
        "$bin" --etcd-endpoints "http://$ETCD" --listen "$WC" --etcd-prefix /bench/ \
            >"$tmp/wcached-$variant.log" 2>&1 &
        wc_pid=$!
        pids+=("$wc_pid")
        for _ in $(seq 500); do curl -fs "http://$WC/readyz" >/dev/null && break; sleep 0.01; done
        curl -fs "http://$WC/readyz" >/dev/null || { echo "wcached not ready" >&2; exit 1; }
    fi
    local e0 w0=0 e1 w1=0 rate_done rev
    e0=$(cpu_ticks "$etcd_pid")
    [ -n "$wc_pid" ] && w0=$(cpu_ticks "$wc_pid")
    rate_done=$(write_all "r$round")
    rev=$(etcd_rev)
    if [ -n "$wc_pid" ]; then # until wcached holds the last write (504 after a few seconds)
        local held=''
        for _ in $(seq 30); do
            if curl -fs -o /dev/null "http://$WC/keys/bench/?limit=1&resourceVersion=$rev&resourceVersionMatch=NotOlderThan"; then
                held=1
                break
            fi
        done
        [ -n "$held" ] || { echo "wcached did not reach revision $rev" >&2; exit 1; }
        w1=$(cpu_ticks "$wc_pid")
    fi
    e1=$(cpu_ticks "$etcd_pid")
    [ -n "$wc_pid" ] && stop "$wc_pid"
    stop "$etcd_pid"
    echo "RESULT variant=$variant round=$round events=$events rate_done=$rate_done" \
        "etcd_cpu_s=$(awk -v a="$e0" -v b="$e1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
        "wcached_cpu_s=$(awk -v a="$w0" -v b="$w1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')" |
        tee -a "$tmp/results" "$out"
}

# The watch stream's bytes, with and without prev_kv: wcached's own create_request, on curl.
bytes() {
    fresh_etcd
    local from create kind rev cw=()
    from=$(($(etcd_rev) + 1))
    for kind in with without; do
        create="{\"create_request\":{\"key\":\"$(b64 /bench/)\",\"range_end\":\"$(b64 /bench0)\","
        create+="\"start_revision\":\"$from\","
        [ $kind = with ] && create+="\"prev_kv\":true,"
        create+="\"progress_notify\":true}}"
        curl -sN -X POST "http://$ETCD/v3/watch" -d "$create" >"$tmp/watch-$kind" &
        cw+=($!)
        pids+=($!)
    done
    write_all bytes >/dev/null
    rev=$(etcd_rev)
    for kind in with without; do
        for _ in $(seq 100); do
            grep -q "\"mod_revision\":\"$rev\"" "$tmp/watch-$kind" && break
            sleep 0.1
        done
        grep -q "\"mod_revision\":\"$rev\"" "$tmp/watch-$kind" ||
            { echo "the watch $kind prev_kv did not get the last write" >&2; exit 1; }
    done
    stop "${cw[0]}"
    stop "${cw[1]}"
    stop "$etcd_pid"
    echo "RESULT variant=bytes events=$events with_prev_kv=$(wc -c <"$tmp/watch-with")" \
        "without_prev_kv=$(wc -c <"$tmp/watch-without")" | tee -a "$tmp/results" "$out"
}

echo "== $events puts at $rate/s per run, $rounds rounds; old: $old, new: the working tree" \
    "($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' with changes'))"
: >"$tmp/results"
bytes
for r in $(seq "$rounds"); do
    for v in none old new; do run "$v" "$r"; done
done

echo "== per event: medians over $rounds rounds; new / old is the median of the rounds' own ratios"
awk -v n="$events" '
function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++)
        for (j = i + 1; j <= k; j++)
            if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
{ delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
f["variant"] == "bytes" { bw = f["with_prev_kv"] / n; bo = f["without_prev_kv"] / n }
f["variant"] ~ /^(none|old|new)$/ {
    e[f["variant"], f["round"]] = f["etcd_cpu_s"]; w[f["variant"], f["round"]] = f["wcached_cpu_s"]
    rounds[f["round"]] = 1
}
END {
    for (r in rounds) {
        eo = eo " " e["old", r]; en = en " " e["new", r]; e0 = e0 " " e["none", r]
        wo = wo " " w["old", r]; wn = wn " " w["new", r]
        rw = rw " " w["new", r] / w["old", r]; re = re " " e["new", r] / e["old", r]
        xo = xo " " e["old", r] - e["none", r]; xn = xn " " e["new", r] - e["none", r]
    }
    us = 1e6 / n
    printf "| per event | with prev_kv (old) | without (new) | new / old |\n|---|---|---|---|\n"
    printf "| bytes on the watch stream | %.0f | %.0f | %.2f |\n", bw, bo, bo / bw
    printf "| wcached CPU, us | %.1f | %.1f | %.2f |\n", median(wo) * us, median(wn) * us, median(rw)
    printf "| etcd CPU, us (the puts and the watch) | %.1f | %.1f | %.2f |\n", median(eo) * us,
        median(en) * us, median(re)
    printf "| etcd CPU for the watch, us (each round less its run with no watcher) | %.1f | %.1f | %.2f |\n",
        median(xo) * us, median(xn) * us, median(xn) / median(xo)
    printf "\netcd CPU with no watcher: %.1f us per put.\n", median(e0) * us
}' "$tmp/results"
