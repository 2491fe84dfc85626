#!/usr/bin/env bash
# The README's first command: on a fresh Debian machine, install what is missing, build, start
# a throw-away etcd on loopback (temporary data dir) and wcached in front of it, load a little
# example data, and print curl commands to try. Ctrl-C (or SIGTERM) stops both and removes the
# data dir.
#
# Environment: WCACHED_PORT (default 8080), ETCD_PORT (default 23790), SKIP_INSTALL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${WCACHED_PORT:-8080}
etcd_port=${ETCD_PORT:-23790}
etcd_peer=$((etcd_port + 1))

[ "${SKIP_INSTALL:-0}" = 1 ] || .ci/install-missing

echo "== building"
[ -f build/release/build.ninja ] || meson setup build/release --buildtype=release >/dev/null
ninja -C build/release >/dev/null

data=$(mktemp -d /tmp/wcached-etcd.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$data"
    echo "== stopped; removed $data"
}
trap cleanup EXIT INT TERM

echo "== starting etcd on 127.0.0.1:$etcd_port (data in $data)"
etcd --name quickstart --data-dir "$data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "quickstart=http://127.0.0.1:$etcd_peer" \
    --log-level error >"$data.log" 2>&1 &
pids+=($!)
export ETCDCTL_API=3
ctl() { etcdctl --endpoints "http://127.0.0.1:$etcd_port" "$@" >/dev/null; }
for _ in $(seq 100); do ctl endpoint health 2>/dev/null && break; sleep 0.1; done

echo "== loading example data"
ctl put /demo/greeting 'hello from etcd'
ctl put /demo/config '{"replicas":3,"mode":"blue"}'
for i in 1 2 3; do
    node=node-$(((i - 1) % 2 + 1))
    ctl put "/registry/pods/default/web-$i" "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"web-$i\",\"namespace\":\"default\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"nodeName\":\"$node\"}}"
done
ctl put /registry/pods/kube-system/dns-1 '{"kind":"Pod","apiVersion":"v1","metadata":{"name":"dns-1","namespace":"kube-system","labels":{"app":"dns"}},"spec":{"nodeName":"node-1"}}'
ctl put /registry/namespaces/default '{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default"}}'

echo "== starting wcached on 127.0.0.1:$port"
build/release/daemon/wcached --etcd-endpoints "http://127.0.0.1:$etcd_port" \
    --listen "127.0.0.1:$port" --index-field spec.nodeName &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null

u="http://127.0.0.1:$port"
cat <<EOF

wcached is ready at $u, in front of etcd at http://127.0.0.1:$etcd_port. Try, in another shell:

  curl -s '$u/keys/demo/greeting'
  curl -s '$u/keys/demo/'
  curl -s '$u/api/v1/pods'
  curl -s '$u/api/v1/namespaces/default/pods?labelSelector=app=web&limit=2'
  curl -N '$u/api/v1/pods?watch=true&fieldSelector=spec.nodeName=node-1'
  curl -N '$u/keys/demo/?watch=1&allowWatchBookmarks=true'
  ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:$etcd_port put /demo/greeting hi
  curl -s '$u/metrics' | grep ^wcached_

Ctrl-C stops wcached and etcd.
EOF
wait "${pids[1]}"
