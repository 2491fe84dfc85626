#!/usr/bin/env bash
# The benchmark: wcached against etcd direct and nchan, side by side in one run, on workloads
# W1-W10 of TARGETS.md, with the machine's loopback bandwidth (iperf3) measured in the
# same run. W9 runs W1 and W2 against wcached over HTTPS with token-authenticated readers,
# beside the same over plain HTTP. W7 puts a tree of wcached between etcd and the readers (one
# reading etcd, four reading it), beside the same readers on the one directly.
#
#   bench/bench.sh [--quick] [--only W1,W2,...] [--out DIR]
#
# Installs what is missing (Debian), builds a release, starts a throw-away etcd (data dir in
# /dev/shm, so fsync is cheap for every peer alike), wcached in front of it and nginx with nchan,
# all on free loopback ports; drives them with build/release/bench/wcload; writes DIR/results.txt
# (one RESULT line per run), DIR/report.md (the tables and the TARGETS ratios) and the plots
# DIR/latency.png and DIR/cpu.png. --quick runs every workload small (a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/lib.sh
. bench/lib.sh

quick=0
only=W1,W2,W3,W4,W5,W6,W7,W8,W9,W10
out=
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --only) only=${2:?--only needs a list}; shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    *) echo "usage: bench/bench.sh [--quick] [--only W1,W2,...,W10] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done
out=${out:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# --- what the benchmark needs -------------------------------------------------------------
.ci/install-missing nginx-light libnginx-mod-nchan iperf3 gnuplot-nox
echo "== building (release)"
[ -f build/release/build.ninja ] || meson setup build/release --buildtype=release >/dev/null
ninja -C build/release >/dev/null
wcload=$root/build/release/bench/wcload
wcached=$root/build/release/daemon/wcached
ulimit -n "$(ulimit -Hn)"
# W2 and W4 open 10,000 connections at once: a listen backlog of 4,096 (the kernel's usual cap)
# overflows and the handshakes beyond it wait for a retransmit, 1 s later. Servers expecting such
# storms raise the cap; every peer here gets the same.
if [ "$(cat /proc/sys/net/core/somaxconn)" -lt 16384 ]; then
    sysctl -qw net.core.somaxconn=16384 net.ipv4.tcp_max_syn_backlog=16384 2>/dev/null ||
        echo "warning: cannot raise net.core.somaxconn: 10,000 connections at once will wait for retransmits"
fi
[ "$(ulimit -n)" -ge 10300 ] || echo "warning: open files limited to $(ulimit -n): 10,000 readers will not fit"

# --- the servers ----------------------------------------------------------------------------
tmp=$(mktemp -d /dev/shm/wcbench.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    [ -f "$tmp/nginx/nginx.pid" ] && kill "$(cat "$tmp/nginx/nginx.pid")" 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

etcd_port=$(free_port 22379)
wc_port=$(free_port 28080)
nchan_port=$(free_port 28090)
wcs_port=$(free_port 28100)
iperf_port=$(free_port 28201)
ETCD=127.0.0.1:$etcd_port WC=127.0.0.1:$wc_port NCHAN=127.0.0.1:$nchan_port WCS=127.0.0.1:$wcs_port

echo "== etcd on $ETCD, wcached on $WC, nchan on $NCHAN; results in $out"
start_etcd "$tmp" "$etcd_port"
pids+=("$etcd_pid")

# wcached as users run it: its default flags (one HTTP thread per core, 5 ms of gathering per
# busy reader), plus the index field W3 selects on. WCACHED_FLAGS adds flags, for comparisons.
WCACHED_FLAGS=${WCACHED_FLAGS:-}
wc_pid=
WCACHED_EXTRA= # more flags for one run's wcached (W10)
wcached_cmd() { echo "$wcached --etcd-endpoints http://$ETCD --listen $WC --index-field spec.nodeName $WCACHED_FLAGS $WCACHED_EXTRA"; }
start_wcached() {
    if [ -n "$wc_pid" ]; then
        kill "$wc_pid" 2>/dev/null || true
        wait "$wc_pid" 2>/dev/null || true # W10's restarted one is not this shell's child
        while curl -fso /dev/null "http://$WC/healthz"; do sleep 0.01; done
    fi
    local t0
    t0=$(date +%s%N)
    # shellcheck disable=SC2046
    $(wcached_cmd) >>"$tmp/wcached.log" 2>&1 &
    wc_pid=$!
    pids+=("$wc_pid")
    for _ in $(seq 600); do curl -fs "http://$WC/readyz" >/dev/null && break; sleep 0.01; done
    wc_ready_ms=$((($(date +%s%N) - t0) / 1000000))
}
start_wcached

# cpu_s PID: the process's utime+stime so far, in seconds (- when it is gone)
cpu_s() {
    local t
    t=$(cpu_ticks "$1" 2>/dev/null) || { echo -; return; }
    awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", t / hz }'
}

# own_wcached PORT PREFIX LOG [FLAGS...]: a wcached of its own on PORT that caches PREFIX only
# (the bench's flags, plus FLAGS), started and waited for: sets own_pid and own_ready_ms (from
# its start to its /readyz answering), own_cpu_s (its CPU then) and own_etcd_cpu_s (etcd's over
# the same time).
own_wcached() {
    local port=$1 prefix=$2 log=$3 t0 e0
    shift 3
    e0=$(cpu_s "$etcd_pid")
    t0=$(date +%s%N)
    # shellcheck disable=SC2086
    "$wcached" --etcd-endpoints "http://$ETCD" --listen "127.0.0.1:$port" --etcd-prefix "$prefix" \
        --index-field spec.nodeName "$@" $WCACHED_FLAGS >>"$log" 2>&1 &
    own_pid=$!
    pids+=("$own_pid")
    for _ in $(seq 6000); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.01; done
    own_ready_ms=$((($(date +%s%N) - t0) / 1000000))
    own_cpu_s=$(cpu_s "$own_pid")
    own_etcd_cpu_s=$(awk -v a="$e0" -v b="$(cpu_s "$etcd_pid")" 'BEGIN { printf "%.2f\n", b - a }')
}

# W9's wcached: the same flags, over HTTPS (a throw-away CA and certificate made by certtool),
# every reader authenticated by a bearer token.
wcs_pid=
start_wcached_tls() {
    [ -n "$wcs_pid" ] && kill "$wcs_pid" 2>/dev/null && wait "$wcs_pid" 2>/dev/null
    local d=$tmp/tls
    if [ ! -f "$d/server.crt" ]; then
        mkdir -p "$d"
        printf 'cn = "wcbench-ca"\nca\ncert_signing_key\nexpiration_days = 2\n' >"$d/ca.tmpl"
        printf 'cn = "127.0.0.1"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nexpiration_days = 2\n' >"$d/server.tmpl"
        certtool --generate-privkey --key-type ecdsa --outfile "$d/ca.key" 2>/dev/null
        certtool --generate-self-signed --load-privkey "$d/ca.key" --template "$d/ca.tmpl" --outfile "$d/ca.crt" 2>/dev/null
        certtool --generate-privkey --key-type ecdsa --outfile "$d/server.key" 2>/dev/null
        certtool --generate-certificate --load-privkey "$d/server.key" --load-ca-certificate "$d/ca.crt" \
            --load-ca-privkey "$d/ca.key" --template "$d/server.tmpl" --outfile "$d/server.crt" 2>/dev/null
        echo "wcbench-token,wcbench,1" >"$d/tokens.csv"
    fi
    # shellcheck disable=SC2086
    "$wcached" --etcd-endpoints "http://$ETCD" --listen "$WCS" --index-field spec.nodeName \
        --tls-cert-file "$d/server.crt" --tls-private-key-file "$d/server.key" \
        --token-auth-file "$d/tokens.csv" $WCACHED_FLAGS >>"$tmp/wcached-tls.log" 2>&1 &
    wcs_pid=$!
    pids+=("$wcs_pid")
    for _ in $(seq 600); do curl -fs --cacert "$d/ca.crt" "https://$WCS/readyz" >/dev/null && break; sleep 0.01; done
}

mkdir -p "$tmp/nginx"
sed -e "s|@DIR@|$tmp/nginx|g" -e "s|@PORT@|$nchan_port|g" bench/nchan.conf.in >"$tmp/nginx/nginx.conf"
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log"
for _ in $(seq 50); do [ -s "$tmp/nginx/nginx.pid" ] && break; sleep 0.1; done
sleep 0.3
nginx_pids() { # the workers: they do the fan-out
    pgrep -P "$(cat "$tmp/nginx/nginx.pid")" | awk '{printf "--pid nginx%d=%s ", NR, $1}'
}

# --- the machine and the wire ---------------------------------------------------------------
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "cores=$(nproc)"
    echo "memory_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
    echo "kernel=$(uname -r)"
    echo "etcd=$(etcd --version | head -1)"
    echo "nginx=$(nginx -v 2>&1)"
    echo "nchan=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan)"
    echo "wcached=$(git describe --always --dirty 2>/dev/null || echo unknown) flags: $WCACHED_FLAGS"
    echo "quick=$quick"
    echo "somaxconn=$(cat /proc/sys/net/core/somaxconn)"
} >"$out/machine.txt"
iperf3 -s -1 -p "$iperf_port" >/dev/null 2>&1 &
sleep 0.5
gbit=$(iperf3 -c 127.0.0.1 -p "$iperf_port" -t 3 -f g | awk '/receiver/ {print $(NF-2)}')
echo "loopback_gbit=$gbit" >>"$out/machine.txt"
echo "== loopback: $gbit Gbit/s (iperf3, one stream)"

# --- the runs ---------------------------------------------------------------------------------
results=$out/results.txt
: >"$results"
runid() { echo "$1-$2-$3-$RANDOM$RANDOM" | tr 'A-Z' 'a-z'; }
# done_rate TAG READERS: the events/s the last run of TAG with READERS readers reached
done_rate() { { grep "^$1 .*readers=$2 " "$results" || true; } | tail -1 | sed -n 's/.* rate_done=\([0-9]*\).*/\1/p'; }
peer_args() {
    case $1 in
    wcached) echo "--server $WC --etcd $ETCD --pid wcached=$wc_pid --pid etcd=$etcd_pid" ;;
    wcached-tls) echo "--server $WCS --etcd $ETCD --pid wcached=$wcs_pid --pid etcd=$etcd_pid --tls-ca $tmp/tls/ca.crt --token wcbench-token" ;;
    etcd) echo "--server $ETCD --etcd $ETCD --pid etcd=$etcd_pid" ;;
    nchan) echo "--server $NCHAN $(nginx_pids)" ;;
    esac
}
# load TAG PEER ARGS...: one wcload run, its RESULT line tagged and kept
load() {
    local tag=$1 peer=$2
    shift 2
    local line
    # shellcheck disable=SC2046
    if line=$("$wcload" --peer "${peer%-tls}" $(peer_args "$peer") --run "$(runid "$tag" "$peer" "$$")" "$@" |
        grep '^RESULT'); then
        echo "$tag ${line#RESULT }" | tee -a "$results" | cut -c1-160
    else
        echo "$tag peer=$peer failed=1" | tee -a "$results"
    fi
}
wc_metric() { metric "http://$WC/metrics" "$1"; }
etcd_metric() { metric "http://$ETCD/metrics" "$1"; }

peers="wcached etcd nchan"
if [ $quick = 1 ]; then
    w1_readers="50 200" w1_events=2000 w2_readers=2000 w3_small=500 w3_big=2000 w3_nodes=100
    w3_events=2000 w4_readers=1000 w4_events=200 w5_keys=20000 w6_readers=200 w8_keys=20000
    w10_readers=1000 w10_events=6000 w10_nodes=100
else
    w1_readers="100 300 1000" w1_events=10000 w2_readers=10000 w3_small=1000 w3_big=10000
    w3_nodes=1000 w3_events=5000 w4_readers=10000 w4_events=200 w5_keys=100000 w6_readers=1000
    w8_keys=100000 w10_readers=10000 w10_events=12000 w10_nodes=1000
fi
# etcd direct cannot keep 1,000 events/s to many readers (the writer waits for it): fewer events
# keep its runs short; every figure is per delivery or per event, so the counts need not match.
etcd_events() { echo $(($1 / 10)); }

if want W2; then
    echo "== W2: idle streams"
    start_wcached # a fresh process: no memory freed by earlier runs to hide the streams' cost
    for p in $peers; do
        if [ "$p" = wcached ]; then
            # etcd's watcher count while wcached holds every stream: it should stay 1
            load W2 "$p" --workload idle --readers "$w2_readers" --hold 5 &
            for _ in $(seq 300); do
                [ "$(wc_metric wcached_http_streams)" -ge "$w2_readers" ] && break
                sleep 0.1
            done
            during=$(etcd_metric etcd_debugging_mvcc_watcher_total)
            wait $!
            echo "W2x peer=wcached etcd_watchers=$during" >>"$results"
        else
            load W2 "$p" --workload idle --readers "$w2_readers" --hold 3
        fi
    done
fi

if want W1; then
    echo "== W1: fan-out, 1,000 events/s"
    for n in $w1_readers; do
        for p in $peers; do
            ev=$w1_events
            [ "$p" = etcd ] && ev=$(etcd_events "$w1_events")
            load W1 "$p" --workload fanout --readers "$n" --events "$ev" --rate 1000
        done
    done
fi

if want W3; then
    echo "== W3: selective, $w3_nodes nodes"
    for n in $w3_small $w3_big; do
        for p in $peers; do
            load W3 "$p" --workload selective --readers "$n" --nodes "$w3_nodes" \
                --events "$w3_events" --rate 1000
        done
    done
    # The same with one interested reader per event whatever the count: every reader has a
    # node of its own, and the writer updates the first $w3_small only, so the readers added
    # are watchers no event is for. This is what "dispatch costs the interested watchers only"
    # claims; above, the interested readers per event grow with the readers.
    echo "== W3i: selective, one interested reader per event"
    for n in $w3_small $w3_big; do
        for p in $peers; do
            load W3i "$p" --workload selective --readers "$n" --nodes "$n" \
                --busy-nodes "$w3_small" --events "$w3_events" --rate 1000
        done
    done
fi

if want W6; then
    echo "== W6: one slow reader among the fast ones"
    for p in $peers; do
        ev=$w1_events
        [ "$p" = etcd ] && ev=$(etcd_events "$w1_events")
        slow0=$( [ "$p" = wcached ] && wc_metric 'wcached_watchers_terminated_total{reason="slow"}' || echo 0)
        load W6 "$p" --workload slow --readers "$w6_readers" --slow 1 --events "$ev" --rate 1000
        if [ "$p" = wcached ]; then
            echo "W6x peer=wcached slow_terminated=$(($(wc_metric 'wcached_watchers_terminated_total{reason="slow"}') - slow0))" >>"$results"
        fi
    done
fi

if want W4; then
    echo "== W4: reconnect storm"
    for p in $peers; do
        r0=$(etcd_metric 'grpc_server_started_total{grpc_method="Range"')
        w0=$(etcd_metric 'grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch"')
        # Every reader misses one second of a 100 events/s stream: the first half of the events
        # is delivered live, the second half is written while the readers are away.
        load W4 "$p" --workload storm --readers "$w4_readers" --events "$w4_events" --rate 100
        r1=$(etcd_metric 'grpc_server_started_total{grpc_method="Range"')
        w1=$(etcd_metric 'grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch"')
        echo "W4x peer=$p etcd_ranges=$((r1 - r0)) etcd_watches=$((w1 - w0))" >>"$results"
    done
fi

if want W5; then
    echo "== W5: cold start and big lists, $w5_keys keys"
    run=$(runid w5 all $$)
    "$wcload" --peer etcd --workload load --etcd "$ETCD" --run "$run" --keys "$w5_keys" >/dev/null
    # Ready is timed on a wcached that caches W5's keys only (--etcd-prefix), the same keys as
    # etcd's range it is set against; the bench's own wcached, started again below for the
    # lists, also holds every earlier workload's keys and history (its time: ready_all_ms).
    own_wcached "$(free_port $((wc_port + 30)))" "/bench/$run/" "$tmp/wcached-w5.log"
    w5_ready_ms=$own_ready_ms w5_cpu_s=$own_cpu_s w5_etcd_cpu_s=$own_etcd_cpu_s
    kill -0 "$own_pid" 2>/dev/null || w5_ready_ms=- # it died: no time to report
    kill "$own_pid" 2>/dev/null || true
    wait "$own_pid" 2>/dev/null || true
    cp "$tmp/wcached-w5.log" "$out/wcached-w5.log" 2>/dev/null || true
    start_wcached
    # median of 5 of curl's total time, in ms
    timed() {
        for _ in 1 2 3 4 5; do curl -fs -o /dev/null -w '%{time_total}\n' "$@"; done |
            sort -n | sed -n 3p | awk '{printf "%.1f", $1 * 1000}'
    }
    b64() { printf '%s' "$1" | base64 -w0; }
    end=$(b64 "/bench/${run}0")
    key=$(b64 "/bench/$run/")
    etcd_all='{"key":"'$key'","range_end":"'$end'"}'
    etcd_page='{"key":"'$key'","range_end":"'$end'","limit":"500"}'
    echo "W5 peer=wcached keys=$w5_keys ready_ms=$w5_ready_ms cpu_ready_s=$w5_cpu_s etcd_cpu_ready_s=$w5_etcd_cpu_s ready_all_ms=$wc_ready_ms list_ms=$(timed "http://$WC/keys/bench/$run/") page_ms=$(timed "http://$WC/keys/bench/$run/?limit=500") list_rv0_ms=$(timed "http://$WC/keys/bench/$run/?resourceVersion=0") rss_wcached_kib=$(awk '/VmRSS/ {print $2}' /proc/$wc_pid/status)" | tee -a "$results"
    echo "W5 peer=etcd keys=$w5_keys ready_ms=- list_ms=$(timed -X POST "http://$ETCD/v3/kv/range" -d "$etcd_all") page_ms=$(timed -X POST "http://$ETCD/v3/kv/range" -d "$etcd_page") list_rv0_ms=- rss_etcd_kib=$(awk '/VmRSS/ {print $2}' /proc/$etcd_pid/status)" | tee -a "$results"
    echo "W5 peer=nchan keys=$w5_keys ready_ms=- list_ms=- page_ms=- list_rv0_ms=- (no storage)" | tee -a "$results"
fi

# W8: the memory of the cache. A wcached of its own caches only W8's prefix, so its RSS is set
# against exactly the bytes it holds: Pods of ~1 KiB (labels, namespace, spec.nodeName) loaded,
# then listed once on each route family, then each updated once with the ring holding the
# updates. etcd's RSS (holding every workload's keys so far) is beside it.
if want W8; then
    echo "== W8: memory, $w8_keys pods of ~1 KiB"
    run=$(runid w8 all $$)
    rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
    raw_of() { sed -n 's/.* raw_bytes=\([0-9]*\).*/\1/p'; }
    raw=$("$wcload" --peer etcd --workload load --pods 1 --etcd "$ETCD" --run "$run" --keys "$w8_keys" | raw_of)
    w8_port=$(free_port $((wc_port + 20)))
    W8=127.0.0.1:$w8_port
    own_wcached "$w8_port" "/w8/$run/" "$tmp/wcached-w8.log" --k8s-prefix "/w8/$run/registry"
    w8_pid=$own_pid w8_ready_ms=$own_ready_ms
    rss_ready=$(rss "$w8_pid")
    # A start serves from its list at once and takes etcd's history back behind it: the cache's
    # memory is measured once that is in, after the two ticks that hand its buffers back (the
    # RSS while it comes is reported beside, rss_history_kib).
    rss_history=$rss_ready
    for _ in $(seq 300); do
        r=$(rss "$w8_pid")
        [ "$r" -gt "$rss_history" ] && rss_history=$r
        [ "$(metric "http://$W8/metrics" wcached_upstream_refills_total)" -ge 1 ] && break
        sleep 0.05
    done
    sleep 2.2
    curl -fs -o /dev/null "http://$W8/keys/w8/$run/"
    curl -fs -o /dev/null "http://$W8/api/v1/pods"
    rss_listed=$(rss "$w8_pid")
    rev0=$(metric "http://$W8/metrics" wcached_events_received_total)
    upd=$("$wcload" --peer etcd --workload load --pods 1 --round 1 --etcd "$ETCD" --run "$run" --keys "$w8_keys" | raw_of)
    for _ in $(seq 600); do
        [ "$(metric "http://$W8/metrics" wcached_events_received_total)" -ge $((rev0 + w8_keys)) ] && break
        sleep 0.1
    done
    sleep 0.5
    rss_updated=$(rss "$w8_pid")
    ring_bytes=$(metric "http://$W8/metrics" wcached_ring_bytes)
    ring_events=$(metric "http://$W8/metrics" wcached_ring_events)
    echo "W8 peer=wcached keys=$w8_keys raw_bytes=$raw update_bytes=$upd ready_ms=$w8_ready_ms rss_ready_kib=$rss_ready rss_history_kib=$rss_history rss_listed_kib=$rss_listed rss_updated_kib=$rss_updated ring_events=$ring_events ring_bytes=$ring_bytes" | tee -a "$results"
    echo "W8 peer=etcd keys=$w8_keys raw_bytes=$raw update_bytes=$upd rss_etcd_kib=$(rss "$etcd_pid")" | tee -a "$results"
    kill "$w8_pid" 2>/dev/null || true
    cp "$tmp/wcached-w8.log" "$out/wcached-w8.log" 2>/dev/null || true
fi

if want W10; then
    echo "== W10: restart under 1,000 events/s"
    # The readers are node agents, as kubelets are: each watches the pods of its node
    # (fieldSelector spec.nodeName, the index), $w10_nodes nodes, so that a change reaches
    # $w10_readers / $w10_nodes readers and 1,000 changes/s stay within what one wcached
    # delivers. The same restart twice: with the refill (the default), and without it (readers
    # get 410 and relist). Then, with the refill, every reader on the whole prefix (each change
    # to every reader: ten times W1's deliveries at full size, past what one machine sends), as
    # earlier runs measured it. etcd's Range and Watch calls are counted across each run.
    for tag in W10 W10off W10all; do
        WCACHED_EXTRA= by_node="--by-node 1 --nodes $w10_nodes"
        [ $tag = W10off ] && WCACHED_EXTRA="--refill-revisions 0"
        [ $tag = W10all ] && by_node="--by-node 0"
        # What one list costs in Range calls here (the bench's wcached caches all that the
        # workloads before left in etcd: at full size about 230 pages in 16 key ranges), from
        # this start: the restart's should be no more than that.
        rs0=$(etcd_metric 'grpc_server_started_total{grpc_method="Range"')
        start_wcached
        rs1=$(etcd_metric 'grpc_server_started_total{grpc_method="Range"')
        restart="kill $wc_pid; while curl -fso /dev/null http://$WC/healthz; do sleep 0.005; done;
            $(wcached_cmd) >>$tmp/wcached.log 2>&1 & echo \$! >$tmp/wc.pid"
        rm -f "$tmp/wc.pid"
        r0=$(etcd_metric 'grpc_server_started_total{grpc_method="Range"')
        w0=$(etcd_metric 'grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch"')
        # shellcheck disable=SC2086
        load "$tag" wcached --workload restart --readers "$w10_readers" --events "$w10_events" \
            --rate 1000 --timeout 60 --restart-cmd "$restart" $by_node
        for _ in $(seq 100); do [ -s "$tmp/wc.pid" ] && break; sleep 0.05; done
        wc_pid=$(cat "$tmp/wc.pid")
        pids+=("$wc_pid")
        r1=$(etcd_metric 'grpc_server_started_total{grpc_method="Range"')
        w1=$(etcd_metric 'grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch"')
        echo "${tag}x peer=wcached etcd_ranges=$((r1 - r0)) start_ranges=$((rs1 - rs0)) etcd_watches=$((w1 - w0)) wcached_relists=$(wc_metric wcached_upstream_relists_total) refill_checks_wait=$(wc_metric 'wcached_upstream_refill_checks_total{outcome="wait"') refill_checks_end=$(wc_metric 'wcached_upstream_refill_checks_total{outcome="end"')" | tee -a "$results"
    done
    WCACHED_EXTRA=
fi

if want W9; then
    # Each pair on fresh processes started together, so that the two see the same machine.
    echo "== W9: W2 and W1 over HTTPS with token-authenticated readers, beside plain HTTP"
    start_wcached
    start_wcached_tls
    load W9-W2-http wcached --workload idle --readers "$w2_readers" --hold 5
    load W9-W2-https wcached-tls --workload idle --readers "$w2_readers" --hold 5
    # CPU per delivery depends on the events per second: a busy reader's events are gathered for
    # a few ms, so a faster writer puts more of them in each send. On 2 cores the HTTPS readers'
    # decryption takes CPU the writer needs, and its run reaches fewer events/s than plain HTTP's;
    # the ratio of the two then measures the writers' pace as much as TLS. When the HTTPS run fell
    # short, plain HTTP runs once more at the HTTPS run's rate, and the target compares those two.
    # The sends each run took (wcached_http_stream_sends_total), kept as "<tag>-sends" lines.
    sends_of() {
        if [ "$1" = wcached-tls ]; then
            curl -fs --cacert "$tmp/tls/ca.crt" -H "Authorization: Bearer wcbench-token" "https://$WCS/metrics" || true
        else curl -fs "http://$WC/metrics" || true; fi | awk '$1 == "wcached_http_stream_sends_total" {s = $2} END {print s + 0}'
    }
    w9_load() { # w9_load TAG PEER READERS ARGS...
        local tag=$1 peer=$2 n=$3 s0
        shift 3
        s0=$(sends_of "$peer")
        load "$tag" "$peer" --workload fanout --readers "$n" --events "$w1_events" "$@"
        echo "${tag}-sends peer=wcached readers=$n sends=$(($(sends_of "$peer") - s0))" >>"$results"
    }
    for n in $w1_readers; do
        w9_load W9-W1-http wcached "$n" --rate 1000
        w9_load W9-W1-https wcached-tls "$n" --rate 1000
        r_http=$(done_rate W9-W1-http "$n") r_https=$(done_rate W9-W1-https "$n")
        if [ -n "$r_http" ] && [ -n "$r_https" ] && [ "$r_https" -gt 0 ] &&
            [ $((r_https * 100)) -lt $((r_http * 95)) ]; then
            w9_load W9-W1-http-same-rate wcached "$n" --rate "$r_https"
        fi
    done
    kill "$wcs_pid" 2>/dev/null || true
fi

# W7: tiers. etcd -> wcached A -> 4 wcached B (each --etcd-endpoints A) -> readers spread over
# the 4 B, under W1's writer, beside the same readers directly on A (one tier) in the same run.
# Every wcached runs with its default flags and W7's prefix (so that it caches W7's keys only,
# not what the workloads before left in etcd). Rounds alternate which goes first; the B exist
# only during the two-tier runs, so a one-tier run's machine does not carry them. The bench's
# own wcached is stopped meanwhile, so that etcd's watcher count is the tree's alone.
if want W7; then
    echo "== W7: tiers, etcd -> 1 wcached -> 4 wcached -> readers"
    if [ $quick = 1 ]; then w7_readers="40 200" w7_events=2000 w7_rounds=1; else
        w7_readers="100 1000" w7_events=10000 w7_rounds=3; fi
    w7_prefix=/bench/w7
    kill "$wc_pid" 2>/dev/null || true
    wait "$wc_pid" 2>/dev/null || true # W10's restarted one is not this shell's child
    while curl -fso /dev/null "http://$WC/healthz"; do sleep 0.01; done
    for _ in $(seq 300); do # the watches of the wcached stopped before (W8's, W9's, the bench's)
        [ "$(etcd_metric etcd_debugging_mvcc_watcher_total)" = 0 ] && break
        sleep 0.01
    done
    w7_wc() { # w7_wc LOG UPSTREAM PORT: one wcached of W7; sets w7_pid
        # shellcheck disable=SC2086
        "$wcached" --etcd-endpoints "http://$2" --listen "127.0.0.1:$3" --etcd-prefix "$w7_prefix" \
            $WCACHED_FLAGS >>"$tmp/$1" 2>&1 &
        w7_pid=$!
        pids+=("$w7_pid")
        for _ in $(seq 1000); do curl -fs "http://127.0.0.1:$3/readyz" >/dev/null && return 0; sleep 0.01; done
        echo "W7: the wcached on port $3 did not become ready; see $tmp/$1" >&2
        return 1
    }
    w7_before=$(etcd_metric etcd_debugging_mvcc_watcher_total)
    w7a_port=$(free_port $((wc_port + 40)))
    w7_wc wcached-w7a.log "$ETCD" "$w7a_port"
    w7a_pid=$w7_pid
    W7A=127.0.0.1:$w7a_port
    w7b_pids=() w7b_servers=
    w7_up() {
        local port=$((w7a_port + 2)) i
        w7b_pids=() w7b_servers=
        for i in 1 2 3 4; do
            port=$(free_port "$port")
            w7_wc "wcached-w7b$i.log" "$W7A" "$port"
            w7b_pids+=("$w7_pid")
            w7b_servers=$w7b_servers${w7b_servers:+,}127.0.0.1:$port
            port=$((port + 2))
        done
    }
    w7_down() {
        local p
        for p in "${w7b_pids[@]}"; do kill "$p" 2>/dev/null || true; done
        for p in "${w7b_pids[@]}"; do wait "$p" 2>/dev/null || true; done
        w7b_pids=()
    }
    # w7_sends ADDR,...: the chunks those wcached wrote to their streams so far
    w7_sends() {
        local a t=0
        for a in ${1//,/ }; do t=$((t + $(metric "http://$a/metrics" wcached_http_stream_sends_total))); done
        echo "$t"
    }
    # w7_load TIERS READERS ROUND [RATE]: one fan-out run, its RESULT line kept as W7-TIERS-rROUND
    # (TIERS one, two, or one-same: one tier at RATE)
    w7_load() {
        local tag=W7-$1-r$3 servers=$W7A pidargs="--pid etcd=$etcd_pid --pid wcached_a=$w7a_pid"
        local i=1 p line s0 s1 probe=
        if [ "$1" = two ]; then
            servers=$w7b_servers
            for p in "${w7b_pids[@]}"; do pidargs="$pidargs --pid wcached_b$i=$p"; i=$((i + 1)); done
            # a reader of etcd's watch API on A and on each B, which wcached sends at once: each
            # change's delivery on a B after A's is what that tier added (tier_p99_us)
            probe="--probe $W7A,$w7b_servers"
        fi
        s0=$(w7_sends "$servers")
        # shellcheck disable=SC2086
        if line=$("$wcload" --peer wcached --workload fanout --server "$servers" $probe --etcd "$ETCD" $pidargs \
            --run "$(runid w7 "$1" "$$")" --readers "$2" --events "$w7_events" --rate "${4:-1000}" | grep '^RESULT'); then
            s1=$(w7_sends "$servers")
            echo "$tag ${line#RESULT } tiers=$1 round=$3 reader_sends=$((s1 - s0)) load1=$(cut -d' ' -f1 /proc/loadavg)" |
                tee -a "$results" | cut -c1-160
        else
            echo "$tag peer=wcached readers=$2 tiers=$1 round=$3 failed=1" | tee -a "$results"
        fi
    }
    for n in $w7_readers; do
        for r in $(seq "$w7_rounds"); do
            order="one two"
            [ $((r % 2)) = 0 ] && order="two one"
            for t in $order; do
                if [ "$t" = two ]; then
                    w7_up
                    # etcd's watchers and watch streams with the whole tree up: A's one watch
                    echo "W7x-r$r peer=wcached readers=$n etcd_watchers=$(etcd_metric etcd_debugging_mvcc_watcher_total) etcd_watch_streams=$(etcd_metric etcd_debugging_mvcc_watch_stream_total) etcd_watchers_before=$w7_before" | tee -a "$results"
                    w7_load two "$n" "$r"
                    w7_down
                else
                    w7_load one "$n" "$r"
                fi
            done
            # As in W9: CPU per delivery depends on the events/s (a faster writer puts more events
            # in each send). When the two tiers reached fewer events/s than one (on 2 cores, four
            # more processes share them), one tier runs again at the two tiers' rate, and the
            # target compares those two.
            r_one=$(done_rate "W7-one-r$r" "$n") r_two=$(done_rate "W7-two-r$r" "$n")
            if [ -n "$r_one" ] && [ -n "$r_two" ] && [ "$r_two" -gt 0 ] &&
                [ $((r_two * 100)) -lt $((r_one * 95)) ]; then
                w7_load one-same "$n" "$r" "$r_two"
            fi
        done
    done
    kill "$w7a_pid" 2>/dev/null || true
    wait "$w7a_pid" 2>/dev/null || true
    cp "$tmp"/wcached-w7*.log "$out/" 2>/dev/null || true
    wc_pid=
    start_wcached
fi

cp "$tmp/wcached.log" "$out/wcached.log" 2>/dev/null || true
cp "$tmp/wcached-tls.log" "$out/wcached-tls.log" 2>/dev/null || true
bench/report.sh "$out"
