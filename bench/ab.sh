#!/usr/bin/env bash
# Two wcached side by side in front of one etcd, driven in alternating wcload fan-out runs: for
# a lever (a flag, or a change between two builds) measured on one noisy machine in one run.
#
#   bench/ab.sh [--readers N] [--events M] [--size B] [--rounds R]
#               [--a-bin PATH] [--a-flags "FLAGS"] [--b-bin PATH] [--b-flags "FLAGS"]
#
# Both default to build/release/daemon/wcached with its default flags (plus --index-field
# spec.nodeName, as the benchmark runs it). Prints one line per run: which, deliveries, latency
# p50/p99 (put acknowledged -> line parsed), wcached's CPU-seconds over the run, and the
# chunks it wrote to the readers' sockets.
set -euo pipefail
cd "$(dirname "$0")/.."
readers=200 events=2000 size=1024 rounds=3
a_bin=build/release/daemon/wcached b_bin=build/release/daemon/wcached a_flags= b_flags=
while [ $# -gt 0 ]; do
    case $1 in
    --readers) readers=$2 ;;
    --events) events=$2 ;;
    --size) size=$2 ;;
    --rounds) rounds=$2 ;;
    --a-bin) a_bin=$2 ;;
    --b-bin) b_bin=$2 ;;
    --a-flags) a_flags=$2 ;;
    --b-flags) b_flags=$2 ;;
    *) sed -n '2,10p' "$0" >&2; exit 2 ;;
    esac
    shift 2
done
[ -f build/release/build.ninja ] || meson setup build/release --buildtype=release >/dev/null
ninja -C build/release >/dev/null
wcload=build/release/bench/wcload

tmp=$(mktemp -d /dev/shm/wcab.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_port=$(free_port) peer_port=$(free_port) a_port=$(free_port) b_port=$(free_port)
etcd --name ab --data-dir "$tmp/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "ab=http://127.0.0.1:$peer_port" --log-level error >"$tmp/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$etcd_port/health" >/dev/null && break; sleep 0.1; done
start() { # start BIN PORT FLAGS -> pid
    # shellcheck disable=SC2086
    "$1" --etcd-endpoints "http://127.0.0.1:$etcd_port" --listen "127.0.0.1:$2" \
        --index-field spec.nodeName $3 >>"$tmp/wcached-$2.log" 2>&1 &
    echo $!
}
a_pid=$(start "$a_bin" "$a_port" "$a_flags")
b_pid=$(start "$b_bin" "$b_port" "$b_flags")
pids+=("$a_pid" "$b_pid")
for port in "$a_port" "$b_port"; do
    for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.05; done
done
# the chunks written to readers' sockets so far
sends() { curl -fs "http://127.0.0.1:$1/metrics" | awk '$1 == "wcached_http_stream_sends_total" {print $2}'; }
echo "A: $a_bin $a_flags"
echo "B: $b_bin $b_flags"
for r in $(seq "$rounds"); do
    for which in a b; do
        if [ $which = a ]; then port=$a_port pid=$a_pid; else port=$b_port pid=$b_pid; fi
        sends0=$(sends "$port")
        line=$("$wcload" --peer wcached --server "127.0.0.1:$port" --etcd "127.0.0.1:$etcd_port" \
            --pid "wcached=$pid" --run "ab-$r-$which" --workload fanout --readers "$readers" \
            --events "$events" --rate 1000 --size "$size" | grep '^RESULT' || true)
        echo "${which^^} $(echo "$line" | tr ' ' '\n' |
            grep -E '^(deliveries|lat_p50_us|lat_p99_us|cpu_wcached_s|rewatches)=' | tr '\n' ' ')sends=$(($(sends "$port") - sends0))"
    done
done
