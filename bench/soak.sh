#!/usr/bin/env bash
# The long runs of TARGETS.md "Reliability", against a real etcd:
#
#   bench/soak.sh r3 [--minutes N] [--out DIR]   readers connecting and dropping in a loop
#                                                (default 10 minutes)
#   bench/soak.sh r6 [--minutes N] [--out DIR]   the soak: W1 at a tenth of its rate, readers
#                                                coming and going, one slow reader (default 60)
#
# R3: 1,000 readers each hold a stream for a random time (mean 1 s; one in eight gives up at
# once, before or just after its request) and drop it (a reset, or a FIN one time in eight), then
# watch again from their last resourceVersion, while a writer puts 10 events/s. Then they all
# leave: wcached's RSS must come back within 5% of what it was before the first reader, and its
# descriptors to the same count. The heap in use (wcached_heap_inuse_bytes) must come back within
# 1% (SOAK_HEAP_PCT): RSS also moves with where freed blocks lie, the bytes in use only with a leak.
# R6: 1,000 readers watch the whole prefix while a writer puts 100 events/s of ~1 KiB JSON; each
# reader drops its stream about once a minute and watches again from its last resourceVersion;
# one slow reader takes a byte a second, is ended by wcached, and comes back a second later. After
# the warm-up (the first 5 minutes, or the first third of a shorter run) wcached's RSS must stay
# within 5% of its value at the end of the warm-up, and every reader's stream must be exact.
#
# Every reader checks its own stream (bench/wcload.c): each change once, in order, none missing,
# across all its re-watches. This script samples wcached's RSS (/proc/PID/status), descriptors
# (/proc/PID/fd) and a few of its metrics every few seconds into DIR/samples.csv, and writes
# DIR/summary.txt (the figures and a PASS or FAIL per goal) and DIR/MODE.png (RSS and descriptors
# over time). It exits 1 when a goal is missed. Short forms for a quick check: --minutes 1, or
# --seconds N (the test suite runs `r3 --seconds 15`, with WCACHED_BIN and WCLOAD_BIN naming the
# binaries to use instead of building a release, and SOAK_RSS_PCT=20 as the RSS bound: in 15 s
# where the freed blocks lie is most of the change in RSS, and the heap in use is the leak check;
# see tests/soak/meson.build).
#
# Both start from a cache in its steady state: 1,000 keys of ~1 KiB that the writer then only
# updates, and a full ring (10 readers while a writer puts twice its size at 1,000 events/s, so
# that every event in it is encoded and has a previous state, as under load). wcached runs with
# its default flags but for --ring-size: the ring keeps 300,000 events by default (5 minutes at
# W1's 1,000 events/s), and filling it would grow RSS by design for longer than the run. R3 keeps
# 1,000 events, R6 30,000 (5 minutes at its 100 events/s). Set WCACHED_FLAGS to run otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/lib.sh
. bench/lib.sh

# --- the figures -------------------------------------------------------------------------------
# report DIR: DIR/summary.txt and DIR/MODE.png from what a run left in DIR (machine.txt,
# samples.csv, wcload.log); `bench/soak.sh report DIR` makes them again.
report() {
    local dir=$1 mode seconds readers rate warmup t_load t_after result ok goal
    local pct=${SOAK_RSS_PCT:-5}
    read -r mode seconds readers rate < <(sed -n '1s/^mode=\([^ ]*\) seconds=\([^ ]*\) readers=\([^ ]*\) rate=\([^ ]*\).*/\1 \2 \3 \4/p' "$dir/machine.txt")
    warmup=$((seconds / 3 < 300 ? seconds / 3 : 300))
    t_load=$(awk -F, '$2 == "load" {print $1; exit}' "$dir/samples.csv")
    t_after=$(awk -F, '$2 == "after" {print $1; exit}' "$dir/samples.csv")
    result=$(grep '^RESULT' "$dir/wcload.log" || true)
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }
    awk -F, -v mode="$mode" -v pct="$pct" -v heap_pct="${SOAK_HEAP_PCT:-1}" -v t_load="$t_load" -v warmup="$warmup" '
        NR == 1 { next }
        $2 == "idle" { rss0 = $3; fd0 = $4; heap0 = $11 }
        $2 == "load" && $1 >= t_load + warmup {
            if (!nw++) { rssw = $3; rmin = rmax = $3; fmin = fmax = $4 }
            if ($3 < rmin) rmin = $3; if ($3 > rmax) rmax = $3
            if ($4 < fmin) fmin = $4; if ($4 > fmax) fmax = $4
            x = ($1 - t_load) / 3600; sx += x; sy += $3; sxx += x * x; sxy += x * $3
            rssl = $3
        }
        $2 == "load" { if ($3 > peak) peak = $3; if ($4 > fpeak) fpeak = $4 }
        $2 == "after" { rss1 = $3; fd1 = $4; heap1 = $11 }
        END {
            printf "rss_start_kib=%d fds_start=%d rss_end_kib=%d fds_end=%d\n", rss0, fd0, rss1, fd1
            printf "rss_peak_kib=%d fds_peak=%d\n", peak, fpeak
            printf "rss_end_vs_start_pct=%.1f\n", rss0 ? 100 * (rss1 - rss0) / rss0 : 0
            if (heap0 != "")
                printf "heap_inuse_start_kib=%d heap_inuse_end_kib=%d heap_inuse_end_vs_start_pct=%.1f\n",
                    heap0, heap1, heap0 ? 100 * (heap1 - heap0) / heap0 : 0
            if (nw > 1) {
                slope = (nw * sxy - sx * sy) / (nw * sxx - sx * sx)
                dev = rmax - rssw > rssw - rmin ? rmax - rssw : rssw - rmin
                printf "warmup_s=%d rss_after_warmup_kib=%d rss_last_kib=%d", warmup, rssw, rssl
                printf " rss_min_kib=%d rss_max_kib=%d rss_max_dev_pct=%.1f", rmin, rmax, 100 * dev / rssw
                printf " rss_slope_kib_per_h=%.0f fds_min=%d fds_max=%d\n", slope, fmin, fmax
                flat = 100 * dev / rssw <= pct
            }
            if (mode == "r3") {
                printf "goal_rss_back_within_%dpct=%s\n", pct, (rss1 - rss0) <= pct / 100 * rss0 ? "PASS" : "FAIL"
                printf "goal_no_fd_leak=%s\n", fd1 <= fd0 ? "PASS" : "FAIL"
                if (heap0 != "")
                    printf "goal_heap_back_within_%spct=%s\n", heap_pct,
                        (heap1 - heap0) <= heap_pct / 100 * heap0 ? "PASS" : "FAIL"
            } else
                printf "goal_rss_flat_within_%dpct=%s\n", pct, flat ? "PASS" : "FAIL"
        }' "$dir/samples.csv" >"$dir/summary.txt"
    {
        echo "deliveries=$(get deliveries) deliveries_expected=$(get deliveries_expected) complete=$(get complete)/$readers"
        echo "gaps=$(get gaps) dups=$(get dups) errors=$(get errors) drops=$(get drops) drops_fin=$(get drops_fin) rewatches=$(get rewatches) slow_ended=$(get slow_ended)"
        echo "events=$(get events) rate_done=$(get rate_done) lat_p99_us=$(get lat_p99_us) cpu_wcached_s=$(get cpu_wcached_s) wall_s=$(get wall_s)"
        ok=FAIL
        [ -n "$result" ] && [ "$(get gaps)" = 0 ] && [ "$(get dups)" = 0 ] && [ "$(get errors)" = 0 ] &&
            [ "$(get deliveries)" = "$(get deliveries_expected)" ] && ok=PASS
        echo "goal_zero_violations=$ok"
    } >>"$dir/summary.txt"
    cat "$dir/summary.txt"
    command -v gnuplot >/dev/null || return 0
    # The goal on the plot: R3's start + 5%; R6's 5% either side of its RSS after the warm-up.
    if [ "$mode" = r3 ]; then
        goal=$(sed -n 's/^rss_start_kib=\([0-9]*\).*/\1/p' "$dir/summary.txt" | awk -v p="$pct" '{
            y = $1 * (1 + p / 100) / 1024
            printf "set arrow from graph 0, first %f to graph 1, first %f nohead lc rgb \"gray\" dt 4\n", y, y
            printf "set label \"start + %d%%\" at graph 0.99, first %f right offset 0,-0.7 tc rgb \"gray\"\n", p, y }')
    else
        goal=$(sed -n 's/.*rss_after_warmup_kib=\([0-9]*\).*/\1/p' "$dir/summary.txt" |
            awk -v p="$pct" -v x="$(awk -v a="$t_load" -v w="$warmup" 'BEGIN {print (a + w) / 60}')" '{
                for (k = -1; k <= 1; k += 2) {
                    y = $1 * (1 + k * p / 100) / 1024
                    printf "set arrow from %f, first %f to graph 1, first %f nohead lc rgb \"gray\" dt 4\n", x, y, y
                }
                printf "set label \"+/- %d%% of the RSS after the warm-up\" at graph 0.99, first %f right offset 0,-0.7 tc rgb \"gray\"\n", p, $1 * (1 - p / 100) / 1024
                printf "set arrow from first %f, graph 0 to first %f, graph 1 nohead dt 3 lw 2 lc rgb \"gray\"\n", x, x }')
    fi
    gnuplot <<EOF
set terminal pngcairo size 1000,520 noenhanced
set output "$dir/$mode.png"
set datafile separator ","
set grid
set key bottom right
set title "$(tr a-z A-Z <<<"$mode"): wcached RSS and open descriptors, $readers readers, $rate events/s, $seconds s"
set xlabel "minutes (dashed: the readers come, and leave)"
set ylabel "RSS (MiB)"
set y2label "descriptors, streams"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set offsets 0, 0, graph 0.1, 0
set arrow from $t_load/60.0, graph 0 to $t_load/60.0, graph 1 nohead dt 2
set arrow from $t_after/60.0, graph 0 to $t_after/60.0, graph 1 nohead dt 2
$goal
plot "$dir/samples.csv" every ::1 using (\$1/60):(\$3/1024) with lines lw 2 title "RSS (MiB)", \
     "" every ::1 using (\$1/60):4 axes x1y2 with lines title "descriptors", \
     "" every ::1 using (\$1/60):6 axes x1y2 with lines dt 2 title "streams"
EOF
    echo "plot: $dir/$mode.png"
}

usage() {
    echo "usage: bench/soak.sh r3|r6 [--minutes N | --seconds N] [--out DIR] | report DIR" >&2
    exit 2
}
mode=${1:-}
if [ "$mode" = report ] && [ -d "${2:-}" ]; then
    report "$2"
    exit
fi
case $mode in r3 | r6) ;; *) usage ;; esac
shift
minutes= seconds= out=
while [ $# -gt 0 ]; do
    case $1 in
    --minutes) minutes=${2:?--minutes needs a number}; shift ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    *) usage ;;
    esac
    shift
done
if [ "$mode" = r3 ]; then
    minutes=${minutes:-10} readers=1000 rate=10 churn_ms=1000 slow=0 interval=2
    ring=1000 flags=${WCACHED_FLAGS---ring-size 1000}
else
    minutes=${minutes:-60} readers=1000 rate=100 churn_ms=60000 slow=1 interval=5
    ring=30000 flags=${WCACHED_FLAGS---ring-size 30000}
fi
case $minutes$seconds in '' | *[!0-9]* | 0) usage ;; esac
duration=${seconds:-$((minutes * 60))}
[ "$duration" -gt 120 ] || interval=1
out=${out:-bench/results/soak-$mode-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -n "${WCACHED_BIN:-}" ] && [ -n "${WCLOAD_BIN:-}" ]; then
    wcached=$WCACHED_BIN wcload=$WCLOAD_BIN
else
    [ -f build/release/build.ninja ] || meson setup build/release --buildtype=release >/dev/null
    ninja -C build/release >/dev/null
    wcload=$root/build/release/bench/wcload
    wcached=$root/build/release/daemon/wcached
fi
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((readers + 200)) ] || { echo "open files limited to $(ulimit -n)" >&2; exit 1; }

tmp=$(mktemp -d /dev/shm/wcsoak.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    cp "$tmp/wcached.log" "$tmp/etcd.log" "$out/" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

etcd_port=$(free_port 23379)
wc_port=$(free_port 29080)
ETCD=127.0.0.1:$etcd_port WC=127.0.0.1:$wc_port
start_etcd "$tmp" "$etcd_port"
pids+=("$etcd_pid")
# shellcheck disable=SC2086
"$wcached" --etcd-endpoints "http://$ETCD" --listen "$WC" $flags >"$tmp/wcached.log" 2>&1 &
wc_pid=$!
pids+=("$wc_pid")
for _ in $(seq 300); do curl -fs "http://$WC/readyz" >/dev/null && break; sleep 0.05; done
curl -fs "http://$WC/readyz" >/dev/null || { echo "wcached did not become ready" >&2; exit 1; }
run=$mode-$$-$RANDOM
"$wcload" --peer etcd --workload load --etcd "$ETCD" --run "$run" --keys 1000 --size 1024 >/dev/null
for _ in $(seq 100); do [ "$(metric "http://$WC/metrics" wcached_keys)" -ge 1000 ] && break; sleep 0.1; done

{
    echo "mode=$mode seconds=$duration readers=$readers rate=$rate churn_ms=$churn_ms slow=$slow"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') cores=$(nproc)"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "etcd=$(etcd --version | head -1)"
    echo "wcached=$(git describe --always --dirty 2>/dev/null || echo unknown) flags: ${flags:-(defaults)}"
} >"$out/machine.txt"
echo "== $mode: $duration s, etcd on $ETCD, wcached on $WC (pid $wc_pid), results in $out"

# --- the sampler: one CSV line every $interval s ---------------------------------------------
echo warmup >"$tmp/phase"
t_origin=$(date +%s.%N)
sampler() {
    local m
    echo "t_s,phase,rss_kib,fds,threads,streams,watchers,ring_events,ring_bytes,slow_terminated,heap_inuse_kib"
    while kill -0 "$wc_pid" 2>/dev/null; do
        m=$(curl -fs --max-time 2 "http://$WC/metrics" || true)
        awk -v t="$(date +%s.%N)" -v t0="$t_origin" -v phase="$(cat "$tmp/phase")" \
            -v fds="$(find "/proc/$wc_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" \
            -v status="/proc/$wc_pid/status" '
            BEGIN { while ((getline l < status) > 0) { split(l, f, /[ \t]+/)
                        if (f[1] == "VmRSS:") rss = f[2]; if (f[1] == "Threads:") th = f[2] } }
            $1 == "wcached_http_streams" { st = $2 }
            $1 == "wcached_watchers" { w = $2 }
            $1 == "wcached_ring_events" { re = $2 }
            $1 == "wcached_ring_bytes" { rb = $2 }
            index($1, "wcached_watchers_terminated_total{reason=\"slow\"") == 1 { sl = $2 }
            $1 == "wcached_heap_inuse_bytes" { hu = $2 }
            END { printf "%.1f,%s,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", t - t0, phase, rss, fds, th,
                      st, w, re, rb, sl, hu / 1024 }' <<<"$m"
        sleep "$interval"
    done
}
sampler >"$out/samples.csv" &
sampler_pid=$!
pids+=("$sampler_pid")

warm_s=$((2 * ring / 1000 > 5 ? 2 * ring / 1000 : 5))
"$wcload" --peer wcached --workload soak --server "$WC" --etcd "$ETCD" --run "$run" \
    --readers 10 --rate 1000 --size 1024 --duration "$warm_s" --progress 0 >"$out/warmup.log"
grep -q ' gaps=0 dups=0 errors=0' "$out/warmup.log" || { echo "warm-up failed: $out/warmup.log" >&2; exit 1; }
echo idle >"$tmp/phase"
sleep $((interval * 3)) # a few samples of the idle daemon: R3's start

# --- the run -----------------------------------------------------------------------------------
echo load >"$tmp/phase"
status=0
"$wcload" --peer wcached --workload soak --server "$WC" --etcd "$ETCD" \
    --run "$run" --readers "$readers" --rate "$rate" --size 1024 \
    --duration "$duration" --churn-ms "$churn_ms" --slow "$slow" --progress 30 --timeout 30 \
    --pid "wcached=$wc_pid" --pid "etcd=$etcd_pid" | tee "$out/wcload.log" |
    grep --line-buffered -E '^(PROGRESS|RESULT)' | cut -c1-200 || status=$?
[ "$status" = 0 ] || echo "wcload failed ($status); see $out/wcload.log" >&2
echo after >"$tmp/phase"
# The readers are gone: give wcached a few rounds of its tick to end what they left, then the end
# figures are the last samples.
for _ in $(seq 30); do [ "$(metric "http://$WC/metrics" wcached_http_streams)" = 0 ] && break; sleep 1; done
sleep $((interval * 4))
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

report "$out"
! grep -q FAIL "$out/summary.txt"
