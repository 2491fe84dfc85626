# Shell helpers shared by bench/bench.sh, bench/soak.sh and bench/prevkv.sh (sourced, not run):
# free loopback ports, a throw-away etcd, a process's CPU, and reading a Prometheus metric.

# free_port FROM: the first port from FROM up that is free with the one after it. Ports below the
# ephemeral range (32768 up, usually), so that no client connection of a run (thousands of them)
# can hold one a server is about to bind; taken in any state counts. (Not `ss | grep -q`: under
# pipefail, ss killed by SIGPIPE when a busy port lists many sockets made the port look free.)
free_port() {
    local p=$1
    while [ -n "$(ss -Htan "sport = :$p")" ] || [ -n "$(ss -Htan "sport = :$((p + 1))")" ]; do
        p=$((p + 2))
    done
    echo "$p"
}

# start_etcd DIR PORT [FLAGS...]: a one-member etcd with its data in DIR/etcd, clients on
# 127.0.0.1:PORT and peers on PORT+1, log in DIR/etcd.log; sets etcd_pid and waits until it is
# healthy. The quota is large: a long run writes hundreds of MB of revisions.
start_etcd() {
    local dir=$1 port=$2
    shift 2
    local addr=127.0.0.1:$port peer=http://127.0.0.1:$((port + 1))
    etcd --name bench --data-dir "$dir/etcd" \
        --listen-client-urls "http://$addr" --advertise-client-urls "http://$addr" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "bench=$peer" \
        --quota-backend-bytes 8589934592 --log-level error "$@" >"$dir/etcd.log" 2>&1 &
    etcd_pid=$!
    for _ in $(seq 100); do curl -fs "http://$addr/health" >/dev/null && return 0; sleep 0.1; done
    echo "etcd did not become healthy on $addr; see $dir/etcd.log" >&2
    return 1
}

# cpu_ticks PID: the process's utime+stime so far, in clock ticks (getconf CLK_TCK a second)
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# metric URL NAME: the value of NAME (or the sum of the series starting with NAME, when NAME
# carries labels)
metric() {
    curl -fs "$1" | awk -v m="$2" '(index(m, "{") ? index($0, m) == 1 : $1 == m) {s += $NF}
        END {print s + 0}'
}
