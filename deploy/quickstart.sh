#!/usr/bin/env bash
# The README's first command: on a fresh Debian machine, install what it runs, build, start a
# throw-away etcd on loopback (temporary data dir) and wcached in front of it, load a little
# example data, and print curl commands to try. Ctrl-C (or SIGTERM) stops both and removes every
# file it made.
#
# It checks its ports before it starts anything, and never writes into an etcd it did not start.
# Every wait is bounded and says what it waits for.
#
# Environment: WCACHED_PORT (default 8080), ETCD_PORT (default 23790; the peer port is the next
# one), SKIP_INSTALL=1 (use what is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${WCACHED_PORT:-8080}
etcd_port=${ETCD_PORT:-23790}
etcd_peer=$((etcd_port + 1))

say() { echo "== $*"; }
die() {
    echo "quickstart: $*" >&2
    exit 1
}

# A port is taken when something accepts a connection on it. (One that cannot be bound for
# another reason makes etcd or wcached exit at once, which the waits below report.)
taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port:WCACHED_PORT" "$etcd_port:ETCD_PORT" "$etcd_peer:ETCD_PORT (its peer port is ETCD_PORT + 1)"; do
    if taken "${p%%:*}"; then
        die "port ${p%%:*} on 127.0.0.1 is taken; set ${p#*:} to a free one"
    fi
done

# Only what the quick start runs: the build, etcd and curl (no test or benchmark packages).
[ "${SKIP_INSTALL:-0}" = 1 ] || .ci/install-missing --only gcc libc6-dev meson ninja-build \
    pkg-config libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev uthash-dev etcd-server \
    etcd-client curl ca-certificates

say "building (build/release)"
[ -f build/release/build.ninja ] || meson setup build/release --buildtype=release -Dtests=disabled >/dev/null
ninja -C build/release >/dev/null

tmp=$(mktemp -d /tmp/wcached-quickstart.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
    say "stopped; removed $tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $1 tenths of a second for the command after it, saying what for; a process that
# died meanwhile ends the wait at once.
wait_for() {
    local tenths=$1 what=$2 pid=$3
    shift 3
    say "waiting for $what (at most $((tenths / 10)) s)"
    for _ in $(seq "$tenths"); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

say "starting etcd on 127.0.0.1:$etcd_port (data in $tmp)"
etcd --name quickstart --data-dir "$tmp/data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "quickstart=http://127.0.0.1:$etcd_peer" \
    --log-level error >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
pids+=("$etcd_pid")
export ETCDCTL_API=3
ctl() { etcdctl --dial-timeout=1s --command-timeout=2s --endpoints "http://127.0.0.1:$etcd_port" "$@"; }
# Ours: the member that answers is the one this script named.
ours() { ctl member list 2>/dev/null | grep -q ", quickstart, "; }
if ! wait_for 100 "etcd to answer" "$etcd_pid" ours; then
    tail -n 5 "$tmp/etcd.log" >&2 || true
    die "etcd did not start on 127.0.0.1:$etcd_port (its last log lines are above)"
fi

say "loading example data"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
put() { ctl put "$1" "$2" >/dev/null; }
put /demo/greeting 'hello from etcd'
put /demo/config '{"replicas":3,"mode":"blue"}'
pod() { # name namespace app node
    echo "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"$1\",\"namespace\":\"$2\",\"labels\":{\"app\":\"$3\"},\"creationTimestamp\":\"$now\"},\"spec\":{\"nodeName\":\"$4\"},\"status\":{\"phase\":\"Running\"}}"
}
for i in 1 2 3; do
    put "/registry/pods/default/web-$i" "$(pod "web-$i" default web "node-$(((i - 1) % 2 + 1))")"
done
put /registry/pods/kube-system/dns-1 "$(pod dns-1 kube-system dns node-1)"
put /registry/namespaces/default "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"default\",\"creationTimestamp\":\"$now\"}}"
rev=$(ctl get /demo/greeting -w fields | sed -n 's/^"Revision" : //p')

say "starting wcached on 127.0.0.1:$port"
build/release/daemon/wcached --etcd-endpoints "http://127.0.0.1:$etcd_port" \
    --listen "127.0.0.1:$port" --index-field spec.nodeName 2>"$tmp/wcached.log" &
wcached_pid=$!
pids+=("$wcached_pid")
u="http://127.0.0.1:$port"
if ! wait_for 100 "wcached to be ready" "$wcached_pid" curl -fsS "$u/readyz"; then
    tail -n 5 "$tmp/wcached.log" >&2 || true
    die "wcached did not get ready on 127.0.0.1:$port (its last log lines are above)"
fi

cat <<EOF

wcached is ready at $u, in front of etcd at http://127.0.0.1:$etcd_port. Try, in another shell:

  curl -s '$u/keys/demo/greeting'
  curl -s '$u/keys/demo/'
  curl -s '$u/api/v1/pods'
  curl -s '$u/api/v1/namespaces/default/pods?labelSelector=app=web&limit=2'
  curl -N '$u/api/v1/pods?watch=true&resourceVersion=$rev&allowWatchBookmarks=true'
  curl -N '$u/api/v1/pods?watch=true&fieldSelector=spec.nodeName=node-1'
  curl -N '$u/keys/demo/?watch=1&allowWatchBookmarks=true'
  ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:$etcd_port put /demo/greeting hi
  curl -s '$u/metrics' | grep ^wcached_

wcached's log: $tmp/wcached.log (removed on exit). Ctrl-C stops wcached and etcd.
EOF
# Ends when either stops; the EXIT trap stops the other.
wait -n "$etcd_pid" "$wcached_pid" || true
