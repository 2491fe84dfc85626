#!/usr/bin/env bash
# deploy/ as operators use it, each artifact checked by the tool it is written for:
#   the systemd unit: systemd-analyze verify, and security rated 2.0 or better (offline);
#   the Kubernetes manifests: kubectl create --dry-run=client, against wcached's own discovery;
#     then what kubectl made of them: every WCACHED_* setting is an option wcached has and
#     wcached starts with each container's settings, and a tier that reads another through a
#     Service reaches it (tests/deploy/check_manifest.py);
#   the Prometheus rules: promtool check rules;
#   the rules and the Grafana dashboard name only metrics that wcached's /metrics has.
# A tool that is not installed is reported as skipped, never as passed.
set -uo pipefail
src=${WCACHED_SOURCE:?} bin=${WCACHED_BIN:?} unit=${WCACHED_UNIT:?}
passed=0 failed=0 skipped=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() { echo "skipped: $*"; skipped=$((skipped + 1)); }
tmp=$(mktemp -d)
"$bin" --listen 127.0.0.1:0 --etcd-endpoints http://127.0.0.1:1 2>"$tmp/log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/log")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "FAIL: wcached did not listen"; exit 1; }
base=http://127.0.0.1:$port

# The unit, with ExecStart on the binary under test and the man page it documents.
if command -v systemd-analyze >/dev/null; then
    sed "s#^ExecStart=.*#ExecStart=$bin#" "$unit" >"$tmp/wcached.service"
    if out=$(cd "$tmp" && MANPATH="$src/deploy/man" systemd-analyze verify wcached.service 2>&1); then
        ok "systemd-analyze verify"
    else
        bad "systemd-analyze verify: $out"
    fi
    level=$(cd "$tmp" && systemd-analyze security --offline=true wcached.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for wcached.service: \([0-9.]*\).*/\1/p')
    if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
        ok "systemd-analyze security: exposure $level"
    else
        bad "systemd-analyze security: exposure '${level:-unknown}', wanted 2.0 or better"
    fi
else
    skip "systemd-analyze is not installed"
fi

# starts_with_env FILE: wcached takes the settings of FILE (KEY=VALUE lines, a manifest's
# environment) and starts listening; its address and upstream are the test's (flags win).
starts_with_env() {
    local log=$tmp/env.log p vars
    : >"$log"
    mapfile -t vars <"$1"
    env "${vars[@]}" "$bin" --listen 127.0.0.1:0 --etcd-endpoints http://127.0.0.1:1 2>"$log" &
    p=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$log" && break
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    grep -q 'listening on' "$log" || { cat "$log"; return 1; }
}

if command -v kubectl >/dev/null; then
    "$bin" --help >"$tmp/help.txt" 2>&1
    for f in "$src"/deploy/kubernetes/*.yaml; do
        name=$(basename "$f")
        if out=$(kubectl --server "$base" create --dry-run=client --validate=false -o json -f "$f" 2>&1); then
            ok "kubectl create --dry-run=client $name"
        else
            bad "kubectl create --dry-run=client $name: $out"
            continue
        fi
        # What kubectl made of it: the variables name wcached's options, and a tier that reads
        # another reaches it (Service, port, listen address, prefix).
        command -v python3 >/dev/null || { skip "python3 is not installed ($name's wiring)"; continue; }
        printf '%s\n' "$out" >"$tmp/manifest.json"
        rm -rf "$tmp/env" && mkdir "$tmp/env"
        if check=$(python3 "$(dirname "$0")/check_manifest.py" "$tmp/manifest.json" "$tmp/help.txt" "$tmp/env" 2>&1); then
            ok "$name: its settings name wcached's options${check:+; $(echo "$check" | tr '\n' ';')}"
        else
            bad "$name: $check"
        fi
        for e in "$tmp"/env/*.env; do
            [ -e "$e" ] || continue
            if msg=$(starts_with_env "$e"); then
                ok "$name: wcached starts with the settings of $(basename "$e" .env)"
            else
                bad "$name: wcached does not start with the settings of $(basename "$e" .env): $msg"
            fi
        done
    done
else
    skip "kubectl is not installed"
fi

if command -v promtool >/dev/null; then
    if out=$(promtool check rules "$src/deploy/prometheus/wcached-rules.yaml" 2>&1); then
        ok "promtool check rules"
    else
        bad "promtool check rules: $out"
    fi
else
    skip "promtool is not installed"
fi

# Every metric the rules and the dashboard name is one /metrics has (after one request, so
# that the per-code counter has a sample).
curl -fsS "$base/healthz" >/dev/null
curl -fsS "$base/metrics" | grep -v '^#' | sed 's/[{ ].*//' | sort -u >"$tmp/names"
for f in "$src/deploy/prometheus/wcached-rules.yaml" "$src/deploy/grafana/wcached.json"; do
    missing=$(grep -oE 'wcached_[a-z_]+' "$f" | sort -u | grep -vxF -f "$tmp/names" | tr '\n' ' ')
    if [ -z "$missing" ]; then
        ok "$(basename "$f") names only metrics wcached has"
    else
        bad "$(basename "$f") names metrics wcached does not have: $missing"
    fi
done
if command -v python3 >/dev/null; then
    if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"]' "$src/deploy/grafana/wcached.json"; then
        ok "the dashboard is JSON with panels"
    else
        bad "the dashboard is not JSON with panels"
    fi
else
    skip "python3 is not installed (dashboard JSON)"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
