#!/usr/bin/env bash
# Turns a benchmark's DIR/results.txt and DIR/machine.txt into DIR/report.md (the tables per
# workload and the TARGETS table with the same-run ratios) and the plots DIR/latency.png and
# DIR/cpu.png. bench/bench.sh calls it; it can be run again on a kept results directory.
#
#   bench/report.sh DIR
set -euo pipefail
dir=${1:?usage: bench/report.sh DIR}
[ -f "$dir/results.txt" ] || { echo "report: no $dir/results.txt" >&2; exit 2; }

awk -v dir="$dir" '
function num(v) { return (v == "" || v == "-") ? -1 : v + 0 }
function f1(v) { return v < 0 ? "-" : sprintf("%.1f", v) }
function f2(v) { return v < 0 ? "-" : sprintf("%.2f", v) }
function f0(v) { return v < 0 ? "-" : sprintf("%.0f", v) }
function ms(us) { return us < 0 ? "-" : sprintf("%.1f", us / 1000) }
function ratio(a, b) { return (a < 0 || b <= 0) ? "-" : sprintf("%.2f", a / b) }
function yes(c) { return c ? "yes" : "**no**" }
function yn(c) { return c ? "yes" : "no" }
function pct(a, b) { return (a < 0 || b <= 0) ? "-" : sprintf("%.1f", a / b * 100) }
# the sum of the fields of run k whose names start with prefix and end with suffix; -1: none
function sum(k, prefix, suffix,   ns, c, i, nm, s, any) {
    s = 0; any = 0; c = split(NAMES[k], ns, " ")
    for (i = 1; i <= c; i++) {
        nm = ns[i]
        if (index(nm, prefix) == 1 && substr(nm, length(nm) - length(suffix) + 1) == suffix &&
            F[k, nm] != "-") { s += F[k, nm]; any = 1 }
    }
    return any ? s : -1
}
function get(k, name) { return ((k, name) in F) ? num(F[k, name]) : -1 }

FILENAME ~ /machine.txt$/ { i = index($0, "="); M[substr($0, 1, i - 1)] = substr($0, i + 1); next }
{
    tag = $1; peer = ""; readers = ""
    for (i = 2; i <= NF; i++) {
        j = index($i, "="); if (!j) continue
        name = substr($i, 1, j - 1); val = substr($i, j + 1)
        if (name == "peer") peer = val
        if (name == "readers") readers = val
        kv[name] = val
    }
    k = tag SUBSEP peer SUBSEP readers
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    ONE[tag, peer] = k # the run of a workload measured once per peer
    for (name in kv) { F[k, name] = kv[name]; NAMES[k] = NAMES[k] " " name }
    delete kv
    if (tag == "W1") { R1[readers] = 1 }
    if (tag == "W3") { R3[readers] = 1 }
    if (tag == "W3i") { R3i[readers] = 1 }
    if (tag ~ /^W9-W1-/ && tag !~ /-sends$/) { R9[readers] = 1 }
    if (tag ~ /^W7-(one|two|one-same)-r[0-9]+$/) { R7[readers] = 1; r = tag; sub(/.*-r/, "", r); r += 0; if (r > N7) N7 = r }
}
END {
    out = dir "/report.md"
    loop_mbs = num(M["loopback_gbit"]) * 1000 / 8
    print "# wcached benchmark" > out
    print "" > out
    printf "Machine: %s, %s cores, %s GiB, kernel %s. %s; %s; nchan %s. wcached %s.\n",
        M["cpu"], M["cores"], M["memory_gib"], M["kernel"], M["etcd"], M["nginx"], M["nchan"],
        M["wcached"] > out
    printf "Run %s%s. Loopback bandwidth (iperf3, one stream, same run): %s Gbit/s.\n\n",
        M["date"], (M["quick"] == 1 ? " (--quick)" : ""), M["loopback_gbit"] > out
    print "Server CPU counts wcached and etcd for wcached, etcd for etcd direct, the nginx workers for nchan." > out
    print "Latency: put acknowledged -> line parsed by the reader (0 when the line came first)." > out
    print "" > out

    # W1 ---------------------------------------------------------------------------------------
    nr = 0; for (r in R1) rs[++nr] = r + 0
    asort_n(rs, nr)
    if (nr) {
        print "## W1 fan-out (every reader watches the whole prefix; writer asked 1,000 events/s)\n" > out
        print "| readers | peer | events/s done | deliveries (in order / asked) | complete readers | re-watches | p50 ms | p99 ms | max ms | server CPU s | CPU s per M deliveries | of which wcached | MB/s delivered | % of loopback |" > out
        print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" > out
        for (i = 1; i <= nr; i++) for (pi = 1; pi <= 3; pi++) {
            p = P[pi]; k = "W1" SUBSEP p SUBSEP rs[i]
            if (!(k in seen)) continue
            cpu = sum(k, "cpu_", "_s"); d = get(k, "deliveries")
            per = (cpu >= 0 && d > 0) ? cpu / d * 1e6 : -1
            mbs = get(k, "wall_s") > 0 ? get(k, "bytes") / get(k, "wall_s") / 1e6 : -1
            W1cpu[p, rs[i]] = per; W1p99[p, rs[i]] = get(k, "lat_p99_us"); W1mbs[p, rs[i]] = mbs
            own = (p == "wcached" && d > 0) ? get(k, "cpu_wcached_s") / d * 1e6 : -1
            printf "| %s | %s | %s | %s / %s | %s / %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                rs[i], p, f0(get(k, "rate_done")), f0(d), f0(get(k, "deliveries_expected")),
                f0(get(k, "complete")), rs[i], f0(get(k, "rewatches")), ms(get(k, "lat_p50_us")),
                ms(get(k, "lat_p99_us")), ms(get(k, "lat_max_us")), f2(cpu), f2(per), f2(own), f0(mbs),
                pct(mbs, loop_mbs) > out
            printf "%s %s %s %s %s\n", rs[i], p, get(k, "lat_p50_us") / 1000,
                get(k, "lat_p99_us") / 1000, per > dir "/w1.dat"
        }
        print "" > out
        top = rs[nr]
    }

    # W2 ---------------------------------------------------------------------------------------
    any = 0
    for (pi = 1; pi <= 3; pi++) {
        p = P[pi]
        if (("W2", p) in ONE) {
            k = ONE["W2", p]; split(k, o, SUBSEP)
            if (!any) {
                print "## W2 idle streams\n" > out
                print "| peer | streams | all accepted in ms | server RSS before MiB | after MiB | KiB per stream |" > out
                print "|---|---|---|---|---|---|" > out
                any = 1
            }
            # wcached: its own RSS (the streams live there); etcd direct: etcd; nchan: the workers
            pre = p == "wcached" ? "rss_wcached" : p == "etcd" ? "rss_etcd" : "rss_nginx"
            a = sum(k, pre, "_kib"); pre0 = p == "wcached" ? "rss0_wcached" : p == "etcd" ? "rss0_etcd" : "rss0_nginx"
            b = sum(k, pre0, "_kib")
            per = (a >= 0 && b >= 0 && o[3] > 0) ? (a - b) / o[3] : -1
            W2kib[p] = per; W2ms[p] = get(k, "connect_ms"); W2n = o[3]
            printf "| %s | %s | %s | %s | %s | %s |\n", p, o[3], f0(get(k, "connect_ms")),
                f1(b / 1024), f1(a / 1024), f2(per) > out
        }
    }
    if (any) {
        kx = "W2x" SUBSEP "wcached" SUBSEP ""
        W2w = get(kx, "etcd_watchers")
        printf "\netcd watchers while wcached held the streams: %s.\n\n", f0(W2w) > out
    }

    # W3, W3i ----------------------------------------------------------------------------------
    nr3 = 0; for (r in R3) r3[++nr3] = r + 0
    asort_n(r3, nr3)
    w3_table("W3", r3, nr3, "## W3 selective (fieldSelector=spec.nodeName=node-i; etcd direct: a key prefix per node; nchan: a channel per node)")
    nr3i = 0; for (r in R3i) r3i[++nr3i] = r + 0
    asort_n(r3i, nr3i)
    w3_table("W3i", r3i, nr3i, "## W3i selective, one interested reader per event (every reader on a node of its own; the writer updates the first " r3i[1] " nodes only)")

    # W4 ---------------------------------------------------------------------------------------
    any = 0
    for (pi = 1; pi <= 3; pi++) {
        p = P[pi]
        if (("W4", p) in ONE) {
            k = ONE["W4", p]; split(k, o, SUBSEP); kx = "W4x" SUBSEP p SUBSEP ""
            if (!any) {
                print "## W4 reconnect storm (every reader drops, events are written, all re-watch at once from their last position)\n" > out
                print "| peer | readers | all caught up in ms | deliveries (in order / asked) | server CPU s in the storm | requests that reached etcd (range / watch) |" > out
                print "|---|---|---|---|---|---|" > out
                any = 1
            }
            W4ms[p] = get(k, "catchup_ms"); W4r[p] = get(kx, "etcd_ranges"); W4w[p] = get(kx, "etcd_watches")
            printf "| %s | %s | %s | %s / %s | %s | %s / %s |\n", p, o[3], f0(W4ms[p]),
                f0(get(k, "deliveries")), f0(get(k, "deliveries_expected")),
                f2(sum(k, "cpu_", "_s")), f0(W4r[p]), f0(W4w[p]) > out
        }
    }
    if (any) print "\nnchan resumes EventSource subscribers from Last-Event-ID; etcd direct readers re-watch from their last revision + 1.\n" > out

    # W10 --------------------------------------------------------------------------------------
    any = 0
    split("W10 W10off W10all", W10T, " ")
    W10L["W10"] = "with the refill (each reader the pods of one node)"
    W10L["W10off"] = "without (--refill-revisions 0; each reader the pods of one node)"
    W10L["W10all"] = "with the refill, every reader the whole prefix (each change to every reader)"
    for (ti = 1; ti <= 3; ti++) {
        t = W10T[ti]
        if (!((t, "wcached") in ONE)) continue
        k = ONE[t, "wcached"]; split(k, o, SUBSEP); kx = t "x" SUBSEP "wcached" SUBSEP ""
        if (!any) {
            print "## W10 restart (wcached restarted while the writer writes; readers retry, re-watch from their last resourceVersion, relist on 410)\n" > out
            print "| run | readers | events/s done | restart to ready ms | all caught up after ready ms | 410s | relists | changes stepped over by relists | gaps / dups / errors | server CPU s (etcd) | requests that reached etcd (range / watch) |" > out
            print "|---|---|---|---|---|---|---|---|---|---|---|" > out
            any = 1
        }
        W10ms[t] = get(k, "catchup_ms"); W10exp[t] = get(k, "expired"); W10rel[t] = get(k, "relists")
        W10r[t] = get(kx, "etcd_ranges"); W10w[t] = get(kx, "etcd_watches")
        W10s[t] = get(kx, "start_ranges"); W10l[t] = get(kx, "wcached_relists")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s | %s / %s |\n",
            W10L[t], o[3],
            f0(get(k, "rate_done")), f0(get(k, "ready_ms")), f0(W10ms[t]), f0(W10exp[t]),
            f0(W10rel[t]), f0(get(k, "skipped")), f0(get(k, "gaps")), f0(get(k, "dups")),
            f0(get(k, "errors")), f2(get(k, "cpu_etcd_s")), f0(W10r[t]), f0(W10w[t]) > out
    }
    if (any) print "\netcd ranges with the refill: the pages of the list and its last key, whether the first revision of the history is compacted (one one-key range), and three for each check of a history gone quiet.\n" > out
    # Where the time after ready goes (the restart figures of wcload).
    if (any) {
        print "| run | changes written from the restart to ready | changes readers lacked at ready (all readers) | streams reopened after ready | the last of them, ms after ready | first reader caught up, ms | half of them | 99% |" > out
        print "|---|---|---|---|---|---|---|---|" > out
        for (ti = 1; ti <= 3; ti++) {
            t = W10T[ti]
            if (!((t, "wcached") in ONE)) continue
            k = ONE[t, "wcached"]
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
                W10L[t], f0(get(k, "seq_ready") - get(k, "seq_kill")),
                f0(get(k, "backlog")), f0(get(k, "open_late")), f0(get(k, "open_last_ms")),
                f0(get(k, "caught_first_ms")), f0(get(k, "caught_p50_ms")), f0(get(k, "caught_p99_ms")) > out
        }
        print "" > out
    }

    # W5 ---------------------------------------------------------------------------------------
    any = 0
    for (pi = 1; pi <= 3; pi++) {
        p = P[pi]; k = "W5" SUBSEP p SUBSEP ""
        if (!(k in seen)) continue
        if (!any) {
            print "## W5 cold start and big lists (keys of ~1 KiB; median of 5)\n" > out
            print "| peer | keys | ready ms (a wcached of these keys) | ready ms (the bench wcached: every workload) | unpaged list ms | unpaged list, RV=0, ms | 500-item page ms |" > out
            print "|---|---|---|---|---|---|---|" > out
            any = 1
        }
        W5ready[p] = get(k, "ready_ms"); W5list[p] = get(k, "list_ms"); W5page[p] = get(k, "page_ms")
        W5keys = get(k, "keys")
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", p, f0(W5keys), f0(W5ready[p]),
            f0(get(k, "ready_all_ms")), f1(W5list[p]), f1(get(k, "list_rv0_ms")), f2(W5page[p]) > out
    }
    if (any) print "" > out

    # W6 ---------------------------------------------------------------------------------------
    any = 0
    for (pi = 1; pi <= 3; pi++) {
        p = P[pi]
        if (("W6", p) in ONE) {
            k = ONE["W6", p]; split(k, o, SUBSEP)
            if (!any) {
                print "## W6 one slow reader (1 byte/s) among the fast ones\n" > out
                print "| peer | fast readers | events/s done | fast p99 ms | W1 p99 ms, same readers | ratio | fast readers complete | slow stream ended by the server |" > out
                print "|---|---|---|---|---|---|---|---|" > out
                any = 1
            }
            W6p99[p] = get(k, "lat_p99_us"); W6n = o[3]
            ended = p == "wcached" ? get("W6x" SUBSEP p SUBSEP "", "slow_terminated") : get(k, "slow_ended")
            W6end[p] = ended
            printf "| %s | %s | %s | %s | %s | %s | %s / %s | %s |\n", p, o[3], f0(get(k, "rate_done")),
                ms(W6p99[p]), ms(W1p99[p, o[3]]), ratio(W6p99[p], W1p99[p, o[3]]),
                f0(get(k, "complete")), o[3], yn(ended > 0) > out
        }
    }
    if (any) print "" > out

    # W9 ---------------------------------------------------------------------------------------
    nr9 = 0; for (r in R9) r9[++nr9] = r + 0
    asort_n(r9, nr9)
    if (nr9 || (("W9-W2-http", "wcached") in ONE) || (("W9-W2-https", "wcached") in ONE)) {
        print "## W9 HTTPS beside plain HTTP (HTTPS readers authenticated by a bearer token; fresh processes, same flags)\n" > out
    }
    if (nr9) {
        print "| readers | transport | events/s done | deliveries (in order / asked) | p50 ms | p99 ms | events per send | wcached CPU s | wcached CPU us per send | wcached CPU us per delivery | HTTPS / HTTP |" > out
        print "|---|---|---|---|---|---|---|---|---|---|---|" > out
        top9 = r9[nr9]
        for (i = 1; i <= nr9; i++) for (t = 1; t <= 3; t++) {
            tr = t == 1 ? "http" : t == 2 ? "https" : "http-same-rate"
            k = "W9-W1-" tr SUBSEP "wcached" SUBSEP r9[i]
            if (!(k in seen)) continue
            d = get(k, "deliveries"); cpu = get(k, "cpu_wcached_s")
            W9cpu[tr, r9[i]] = (cpu >= 0 && d > 0) ? cpu / d * 1e6 : -1
            ks = "W9-W1-" tr "-sends" SUBSEP "wcached" SUBSEP r9[i]
            sends = (ks in seen) ? get(ks, "sends") : -1
            per_send = "-"; per_cpu = "-"
            if (sends > 0) { per_send = f2(d / sends); per_cpu = f2(cpu / sends * 1e6) }
            printf "| %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s |\n", r9[i],
                t == 3 ? "http, at the HTTPS run rate" : tr,
                f0(get(k, "rate_done")), f0(d), f0(get(k, "deliveries_expected")),
                ms(get(k, "lat_p50_us")), ms(get(k, "lat_p99_us")),
                per_send, f2(cpu), per_cpu,
                f2(W9cpu[tr, r9[i]]),
                t == 1 ? "" : ratio(W9cpu["https", r9[i]], W9cpu[t == 2 ? "http" : tr, r9[i]]) > out
        }
        if (("http-same-rate", top9) in W9cpu || ("http-same-rate", r9[1]) in W9cpu) print "\nWhen the HTTPS run reached fewer events/s than plain HTTP (the decryption by the readers shares the 2 cores with the writer), plain HTTP ran again at the rate of the HTTPS run: CPU per delivery depends on the events per send, so the target compares the two at the same events/s." > out
        print "" > out
    }
    for (t = 1; t <= 2; t++) {
        tr = t == 1 ? "http" : "https"
        if (!(("W9-W2-" tr, "wcached") in ONE)) continue
        k = ONE["W9-W2-" tr, "wcached"]
        split(k, o, SUBSEP)
        if (t == 1 || !(("W9-W2-http", "wcached") in ONE)) {
            print "| idle streams | transport | all accepted in ms | wcached RSS before MiB | after MiB | KiB per stream |" > out
            print "|---|---|---|---|---|---|" > out
        }
        a = get(k, "rss_wcached_kib"); b = get(k, "rss0_wcached_kib")
        W9kib[tr] = (a >= 0 && b >= 0 && o[3] > 0) ? (a - b) / o[3] : -1; W9n = o[3]
        printf "| %s | %s | %s | %s | %s | %s |\n", o[3], tr, f0(get(k, "connect_ms")), f1(b / 1024),
            f1(a / 1024), f2(W9kib[tr]) > out
    }
    if (("W9-W2-https", "wcached") in ONE) print "" > out
    # W7 ---------------------------------------------------------------------------------------
    nr7 = 0; for (r in R7) r7[++nr7] = r + 0
    asort_n(r7, nr7)
    if (nr7) {
        print "## W7 tiers (etcd -> wcached A -> 4 wcached B, each reading A -> the readers spread over the B; one tier: the same readers on A)\n" > out
        print "| readers | round | tiers | events/s done | deliveries (in order / asked) | complete readers | gaps / dups | re-watches | p50 ms | p99 ms | events per send to a reader | wcached CPU s: A / the B | wcached CPU us per delivery | with etcd | load avg | etcd watchers / watch streams |" > out
        print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" > out
        W7ok = 1; W7w = -1; W7s = -1
        for (i = 1; i <= nr7; i++) {
            n7r = 0
            for (r = 1; r <= N7; r++) for (t = 1; t <= 3; t++) {
                tt = t == 1 ? "one" : t == 2 ? "two" : "one-same"; k = "W7-" tt "-r" r SUBSEP "wcached" SUBSEP r7[i]
                if (!(k in seen)) continue
                d = get(k, "deliveries"); wc = sum(k, "cpu_wcached", "_s"); all = sum(k, "cpu_", "_s")
                per = (wc >= 0 && d > 0) ? wc / d * 1e6 : -1
                W7cpu[tt, r7[i], r] = per; W7p99[tt, r7[i], r] = get(k, "lat_p99_us")
                W7p50[tt, r7[i], r] = get(k, "lat_p50_us")
                if (tt == "two") { W7t50[r7[i], r] = get(k, "tier_p50_us"); W7t99[r7[i], r] = get(k, "tier_p99_us") }
                if (get(k, "failed") > 0 || get(k, "complete") != r7[i] || get(k, "gaps") != 0 ||
                    get(k, "dups") != 0 || d != get(k, "deliveries_expected")) W7ok = 0
                ew = "-"
                if (tt == "two") {
                    kx = "W7x-r" r SUBSEP "wcached" SUBSEP r7[i]
                    a = get(kx, "etcd_watchers"); b = get(kx, "etcd_watch_streams")
                    if (a > W7w) W7w = a
                    if (b > W7s) W7s = b
                    if (a != 1 || b != 1) W7one = 1 # not exactly one
                    ew = f0(a) " / " f0(b)
                }
                wa = get(k, "cpu_wcached_a_s"); sn = get(k, "reader_sends")
                printf "| %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s |\n",
                    r7[i], r, tt == "one" ? "1 (A)" : tt == "two" ? "2 (A, 4 B)" : "1 (A), at the rate of 2", f0(get(k, "rate_done")), f0(d),
                    f0(get(k, "deliveries_expected")), f0(get(k, "complete")), r7[i],
                    f0(get(k, "gaps")), f0(get(k, "dups")), f0(get(k, "rewatches")),
                    ms(get(k, "lat_p50_us")), ms(get(k, "lat_p99_us")), f1(sn > 0 ? d / sn : -1),
                    f2(wa), tt != "two" ? "-" : f2(wc - wa), f2(per),
                    f2((all >= 0 && d > 0) ? all / d * 1e6 : -1), F[k, "load1"], ew > out
            }
        }
        print "" > out
        print "| readers | rounds | added by a tier per change, p50 / p99 ms (probes on A and each B; median; the p99 of each round) | end-to-end p50 added, two tiers against one ms (median) | end-to-end p99 added (median; each round) | wcached CPU per delivery, two tiers / one at the same events/s (median; each round) | the same, one tier at its own events/s |" > out
        print "|---|---|---|---|---|---|---|" > out
        for (i = 1; i <= nr7; i++) {
            c = 0; l50 = ""; l99 = ""; lc = ""; lo7 = ""; lt = ""
            for (r = 1; r <= N7; r++) {
                if (!(("one", r7[i], r) in W7p99) || !(("two", r7[i], r) in W7p99)) continue
                c++
                T50[c] = W7t50[r7[i], r] / 1000; T99[c] = W7t99[r7[i], r] / 1000
                lt = lt (c > 1 ? ", " : "") sprintf("%.1f", T99[c])
                D50[c] = (W7p50["two", r7[i], r] - W7p50["one", r7[i], r]) / 1000
                D99[c] = (W7p99["two", r7[i], r] - W7p99["one", r7[i], r]) / 1000
                DO[c] = W7cpu["one", r7[i], r] > 0 ? W7cpu["two", r7[i], r] / W7cpu["one", r7[i], r] : -1
                # the pair the target compares: one tier at the rate of two, when it ran again at it
                one = (("one-same", r7[i], r) in W7cpu) ? W7cpu["one-same", r7[i], r] : W7cpu["one", r7[i], r]
                DC[c] = one > 0 ? W7cpu["two", r7[i], r] / one : -1
                l99 = l99 (c > 1 ? ", " : "") sprintf("%.1f", D99[c]); lc = lc (c > 1 ? ", " : "") sprintf("%.2f", DC[c])
                lo7 = lo7 (c > 1 ? ", " : "") sprintf("%.2f", DO[c])
            }
            if (!c) continue
            W7d99[r7[i]] = median(D99, c); W7dc[r7[i]] = median(DC, c); W7do[r7[i]] = median(DO, c)
            W7t99m[r7[i]] = median(T99, c)
            printf "| %s | %d | %.1f / %.1f (%s) | %.1f | %.1f (%s) | %.2f (%s) | %.2f (%s) |\n", r7[i], c,
                median(T50, c), W7t99m[r7[i]], lt, median(D50, c),
                W7d99[r7[i]], l99, W7dc[r7[i]], lc, W7do[r7[i]], lo7 > out
        }
        print "\nwcached CPU counts A and, with two tiers, the four B; \"with etcd\" adds the CPU of etcd. Latency: put acknowledged -> line parsed, through every tier.\n" > out
        print "Added by a tier, per change: with two tiers, wcload also reads the etcd watch API (`POST /v3/watch`, which wcached sends at once) on A and on each B; the delivery of a change on a B after its delivery on A is what that tier added, measured on one clock in one run. The end-to-end difference compares separate runs, so it also carries the spread of the etcd p99 from run to run (the rounds of one tier alone differ by more than 2 ms), and, on 2 cores, the CPU the four B take from etcd and the writer. The gathering for readers (`--coalesce-ms`, 5 ms by default) is in both layouts: one tier gathers on A, two tiers on the B.\n" > out
        print "CPU per delivery depends on the events/s: a busy reader is sent what gathered while its pump was busy, so a faster writer puts more events in each send. When the two tiers reached fewer events/s than one (on 2 cores the four B share the cores with A, etcd and the readers), one tier ran again at the rate the two tiers reached, and the target compares those two (as W9 does).\n" > out
    }

    # W8 ---------------------------------------------------------------------------------------
    k = "W8" SUBSEP "wcached" SUBSEP ""
    if (k in NAMES) {
        print "## W8 memory of the cache (Pods of ~1 KiB with labels, --index-field spec.nodeName)\n" > out
        print "| keys | raw key+value MB | ready ms | RSS ready MB | RSS at most while the history came MB | RSS after a list on each family MB | / raw | update raw MB | RSS growth MB | / update raw | ring events | wcached_ring_bytes MB | etcd RSS MB |" > out
        print "|---|---|---|---|---|---|---|---|---|---|---|---|---|" > out
        W8raw = get(k, "raw_bytes"); W8upd = get(k, "update_bytes")
        W8listed = get(k, "rss_listed_kib") * 1024; W8grow = (get(k, "rss_updated_kib") - get(k, "rss_listed_kib")) * 1024
        W8etcd = get("W8" SUBSEP "etcd" SUBSEP "", "rss_etcd_kib") * 1024
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f0(get(k, "keys")),
            f1(W8raw / 1e6), f0(get(k, "ready_ms")), f1(get(k, "rss_ready_kib") * 1024 / 1e6),
            f1(get(k, "rss_history_kib") * 1024 / 1e6), f1(W8listed / 1e6), ratio(W8listed, W8raw), f1(W8upd / 1e6), f1(W8grow / 1e6),
            ratio(W8grow, W8upd), f0(get(k, "ring_events")), f1(get(k, "ring_bytes") / 1e6),
            f1(W8etcd / 1e6) > out
        print "" > out
    }

    # TARGETS ----------------------------------------------------------------------------------
    print "## TARGETS, same run\n" > out
    print "| id | goal | wcached | etcd direct | nchan | wcached / etcd | wcached / nchan | met |" > out
    print "|---|---|---|---|---|---|---|---|" > out
    if (nr) {
        a = W1cpu["wcached", top]; b = W1cpu["etcd", top]; c = W1cpu["nchan", top]
        printf "| W1 | CPU s per M deliveries (%s readers) <= 1/10 etcd and <= nchan | %s | %s | %s | %s | %s | %s |\n",
            top, f2(a), f2(b), f2(c), ratio(a, b), ratio(a, c), yes(a >= 0 && a <= b / 10 && a <= c) > out
        a = W1p99["wcached", top]
        printf "| W1 | p99 latency <= 20 ms (%s readers) | %s | %s | %s | %s | %s | %s |\n", top,
            ms(a), ms(W1p99["etcd", top]), ms(W1p99["nchan", top]), ratio(a, W1p99["etcd", top]),
            ratio(a, W1p99["nchan", top]), yes(a >= 0 && a <= 20000) > out
        a = W1mbs["wcached", top]
        printf "| W1 | delivered bytes/s >= 25%% of loopback (%s MB/s) | %s MB/s | %s MB/s | %s MB/s | %s | %s | %s |\n",
            f0(loop_mbs), f0(a), f0(W1mbs["etcd", top]), f0(W1mbs["nchan", top]),
            ratio(a, W1mbs["etcd", top]), ratio(a, W1mbs["nchan", top]),
            yes(a >= 0 && loop_mbs > 0 && a >= loop_mbs / 4) > out
    }
    if ("wcached" in W2kib) {
        a = W2kib["wcached"]
        printf "| W2 | <= 4 KiB RSS per idle stream (%s streams) | %s KiB | %s KiB | %s KiB | %s | %s | %s |\n",
            W2n, f2(a), f2(W2kib["etcd"]), f2(W2kib["nchan"]), ratio(a, W2kib["etcd"]),
            ratio(a, W2kib["nchan"]), yes(a >= 0 && a <= 4) > out
        a = W2ms["wcached"]
        printf "| W2 | all accepted in < 2 s | %s ms | %s ms | %s ms | %s | %s | %s |\n", f0(a),
            f0(W2ms["etcd"]), f0(W2ms["nchan"]), ratio(a, W2ms["etcd"]), ratio(a, W2ms["nchan"]),
            yes(a >= 0 && a < 2000) > out
        printf "| W2 | etcd sees exactly 1 watch | %s | %s | - | - | - | %s |\n", f0(W2w), W2n,
            yes(W2w == 1) > out
    }
    w3_row("W3", r3, nr3, ", as specified (interested readers per event grow with them)")
    w3_row("W3i", r3i, nr3i, ", one interested reader per event (W3i)")
    if ("wcached" in W4ms) {
        a = W4ms["wcached"]
        printf "| W4 | all caught up in < 2 s | %s ms | %s ms | %s ms | %s | %s | %s |\n", f0(a),
            f0(W4ms["etcd"]), f0(W4ms["nchan"]), ratio(a, W4ms["etcd"]), ratio(a, W4ms["nchan"]),
            yes(a >= 0 && a < 2000) > out
        printf "| W4 | zero extra requests reach etcd | %s | %s | - | - | - | %s |\n",
            f0(W4r["wcached"] + W4w["wcached"]), f0(W4r["etcd"] + W4w["etcd"]),
            yes(W4r["wcached"] + W4w["wcached"] == 0) > out
    }
    if ("W10" in W10ms) {
        a = W10ms["W10"]; b = ("W10off" in W10ms) ? W10ms["W10off"] : -1
        printf "| W10 | all caught up < 3 s after ready (without the refill: %s ms) | %s ms | - | - | - | - | %s |\n",
            f0(b), f0(a), yes(a >= 0 && a < 3000) > out
        printf "| W10 | zero 410s and zero relists (without the refill: %s / %s) | %s / %s | - | - | - | - | %s |\n",
            f0(W10exp["W10off"]), f0(W10rel["W10off"]), f0(W10exp["W10"]), f0(W10rel["W10"]),
            yes(W10exp["W10"] == 0 && W10rel["W10"] == 0) > out
        printf "| W10 | etcd sees one list and one watch (one list: the %s Range calls of a start here; without the refill: %s ranges) | %s ranges / %s watch, %s relists | - | - | - | - | %s |\n",
            f0(W10s["W10"]), f0(W10r["W10off"]), f0(W10r["W10"]), f0(W10w["W10"]), f0(W10l["W10"]),
            yes(W10w["W10"] == 1 && W10l["W10"] == 0 && W10r["W10"] <= W10s["W10"] + 3) > out
    }
    if ("W10all" in W10ms)
        printf "| W10, every reader the whole prefix (not the mix the target is measured on) | 410s / relists; caught up after ready | %s / %s; %s ms | - | - | - | - | %s |\n",
            f0(W10exp["W10all"]), f0(W10rel["W10all"]), f0(W10ms["W10all"]),
            yes(W10exp["W10all"] == 0 && W10rel["W10all"] == 0) > out
    if ("wcached" in W5ready) {
        printf "| W5 | ready no slower than the unpaged range of etcd (%s keys) | %s ms | %s ms | - | %s | - | %s |\n", W5keys,
            f0(W5ready["wcached"]), f1(W5list["etcd"]), ratio(W5ready["wcached"], W5list["etcd"]),
            yes(W5ready["wcached"] >= 0 && W5list["etcd"] > 0 && W5ready["wcached"] <= W5list["etcd"]) > out
        printf "| W5 | unpaged list in < 300 ms | %s ms | %s ms | - | %s | - | %s |\n",
            f1(W5list["wcached"]), f1(W5list["etcd"]), ratio(W5list["wcached"], W5list["etcd"]),
            yes(W5list["wcached"] >= 0 && W5list["wcached"] < 300) > out
        printf "| W5 | 500-item page in < 5 ms | %s ms | %s ms | - | %s | - | %s |\n",
            f2(W5page["wcached"]), f2(W5page["etcd"]), ratio(W5page["wcached"], W5page["etcd"]),
            yes(W5page["wcached"] >= 0 && W5page["wcached"] < 5) > out
    }
    if (nr9) {
        a = W9cpu["https", top9]; b = W9cpu["http", top9]; how = ""
        if (("http-same-rate", top9) in W9cpu) {
            how = sprintf(", same events/s; x%s against HTTP at its own rate", ratio(a, b))
            b = W9cpu["http-same-rate", top9]
        }
        printf "| W9 | wcached CPU per delivery over HTTPS within 1.5x of plain HTTP (%s readers) | %s us (HTTP %s us) | - | - | - | - | %s (x%s%s) |\n",
            top9, f2(a), f2(b), yes(a >= 0 && b > 0 && a <= 1.5 * b), ratio(a, b), how > out
    }
    if ("https" in W9kib) {
        a = W9kib["https"]
        printf "| W9 | <= 8 KiB RSS per idle HTTPS stream (%s streams) | %s KiB (HTTP %s KiB) | - | - | - | - | %s |\n",
            W9n, f2(a), f2(W9kib["http"]), yes(a >= 0 && a <= 8) > out
    }
    if (nr7) {
        lo = r7[1]; hi = r7[nr7]
        printf "| W7 | etcd sees exactly 1 watch with the tree up | %s watchers / %s streams (at most) | - | - | - | - | %s |\n",
            f0(W7w), f0(W7s), yes(W7w == 1 && W7s == 1 && !W7one) > out
        printf "| W7 | every stream of every reader exact (every run, both tiers) | %s | - | - | - | - | %s |\n",
            W7ok ? "all" : "not all", yes(W7ok) > out
        printf "| W7 | p99 added per tier <= 2 ms below saturation (per change, probes on A and each B, %s readers; %s readers: %s ms; end-to-end p99, two tiers against one: %s ms, %s readers: %s ms) | %s ms | - | - | - | - | %s |\n",
            lo, hi, sf1(W7t99m, hi), sf1(W7d99, lo), hi, sf1(W7d99, hi), sf1(W7t99m, lo),
            yes((lo in W7t99m) && W7t99m[lo] >= 0 && W7t99m[lo] <= 2) > out
        printf "| W7 | wcached CPU per delivery within 1.2x of one tier, same events/s (%s readers; one tier at its own events/s: x%s; %s readers: x%s) | x%s | - | - | - | - | %s |\n",
            hi, f2(W7do[hi]), lo, f2(W7dc[lo]), f2(W7dc[hi]), yes(W7dc[hi] > 0 && W7dc[hi] <= 1.2) > out
    }
    if (("W8" SUBSEP "wcached" SUBSEP "") in NAMES) {
        printf "| W8 | RSS <= 1.5x raw after a list on each family | %s MB | %s MB (etcd RSS) | - | %s | - | %s |\n",
            f1(W8listed / 1e6), f1(W8etcd / 1e6), ratio(W8listed, W8etcd),
            yes(W8raw > 0 && W8listed <= 1.5 * W8raw) > out
        printf "| W8 | ring: RSS growth <= 1.3x the updates raw | %s MB (%s x) | - | - | - | - | %s |\n",
            f1(W8grow / 1e6), ratio(W8grow, W8upd), yes(W8upd > 0 && W8grow <= 1.3 * W8upd) > out
    }
    if ("wcached" in W6p99) {
        a = W6p99["wcached"]; b = W1p99["wcached", W6n]
        printf "| W6 | fast readers p99 within 2x of W1 (%s readers) | %s ms (W1 %s) | %s ms | %s ms | %s | %s | %s |\n",
            W6n, ms(a), ms(b), ms(W6p99["etcd"]), ms(W6p99["nchan"]), ratio(a, W6p99["etcd"]),
            ratio(a, W6p99["nchan"]), yes(a >= 0 && b > 0 && a <= 2 * b) > out
        printf "| W6 | the slow reader is ended within the budget | %s | %s | %s | - | - | %s |\n",
            yn(W6end["wcached"] > 0), yn(W6end["etcd"] > 0), yn(W6end["nchan"] > 0),
            yes(W6end["wcached"] > 0) > out
    }
}
# The table of a selective run (tag W3 or W3i) over the reader counts rr[1..n]; keeps the CPU
# per upstream event in W3wc[tag, peer, readers] (wcached alone) and W3all (the whole server).
function w3_table(tag, rr, n, title,   i, pi, p, k, cpu, ev, wc) {
    if (!n) return
    print title "\n" > out
    print "| readers | peer | events/s done | deliveries (in order / asked) | complete readers | p99 ms | server CPU s | wcached CPU us per upstream event | server CPU us per upstream event |" > out
    print "|---|---|---|---|---|---|---|---|---|" > out
    for (i = 1; i <= n; i++) for (pi = 1; pi <= 3; pi++) {
        p = P[pi]; k = tag SUBSEP p SUBSEP rr[i]
        if (!(k in seen)) continue
        cpu = sum(k, "cpu_", "_s"); ev = get(k, "events")
        wc = p == "wcached" ? get(k, "cpu_wcached_s") / ev * 1e6 : -1
        W3wc[tag, p, rr[i]] = wc; W3all[tag, p, rr[i]] = ev > 0 ? cpu / ev * 1e6 : -1
        printf "| %s | %s | %s | %s / %s | %s / %s | %s | %s | %s | %s |\n", rr[i], p,
            f0(get(k, "rate_done")), f0(get(k, "deliveries")), f0(get(k, "deliveries_expected")),
            f0(get(k, "complete")), rr[i], ms(get(k, "lat_p99_us")), f2(cpu), f0(wc),
            f0(W3all[tag, p, rr[i]]) > out
    }
    print "" > out
}
# The TARGETS row of a selective run: the CPU per event of wcached, from the fewest to the most readers.
function w3_row(tag, rr, n, what,   lo, hi, a) {
    if (n < 2) return
    lo = rr[1]; hi = rr[n]
    a = W3wc[tag, "wcached", lo] > 0 ? W3wc[tag, "wcached", hi] / W3wc[tag, "wcached", lo] : -1
    printf "| W3 | wcached CPU per upstream event flat (within 20%%) from %s to %s readers%s | %s -> %s us (x%s) | %s -> %s us | %s -> %s us | - | - | %s |\n",
        lo, hi, what, f0(W3wc[tag, "wcached", lo]), f0(W3wc[tag, "wcached", hi]), f2(a),
        f0(W3all[tag, "etcd", lo]), f0(W3all[tag, "etcd", hi]), f0(W3all[tag, "nchan", lo]),
        f0(W3all[tag, "nchan", hi]), yes(a > 0 && a <= 1.2) > out
}
function sf1(a, i) { return (i in a) ? sprintf("%.1f", a[i]) : "-" } # signed
function median(a, n,   b, i) { for (i = 1; i <= n; i++) b[i] = a[i]; asort_n(b, n); return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }
function asort_n(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
BEGIN { P[1] = "wcached"; P[2] = "etcd"; P[3] = "nchan" }
' "$dir/machine.txt" "$dir/results.txt"

# --- plots ------------------------------------------------------------------------------------
if [ -s "$dir/w1.dat" ] && command -v gnuplot >/dev/null; then
    for p in wcached etcd nchan; do
        awk -v p="$p" '$2 == p' "$dir/w1.dat" | sort -n >"$dir/w1-$p.dat"
    done
    gnuplot <<EOF
set terminal pngcairo size 900,540 noenhanced
set grid
set key top left
set xlabel "readers (W1 fan-out, 1,000 events/s asked)"
set logscale y
set output "$dir/latency.png"
set ylabel "latency, ms (log)"
set title "W1 delivery latency: put acknowledged -> line parsed"
plot "$dir/w1-wcached.dat" using 1:(\$4>0?\$4:1/0) with linespoints lw 2 lc 1 title "wcached p99", \
     "$dir/w1-wcached.dat" using 1:(\$3>0?\$3:1/0) with linespoints dt 2 lc 1 title "wcached p50", \
     "$dir/w1-etcd.dat" using 1:(\$4>0?\$4:1/0) with linespoints lw 2 lc 2 title "etcd direct p99", \
     "$dir/w1-etcd.dat" using 1:(\$3>0?\$3:1/0) with linespoints dt 2 lc 2 title "etcd direct p50", \
     "$dir/w1-nchan.dat" using 1:(\$4>0?\$4:1/0) with linespoints lw 2 lc 3 title "nchan p99", \
     "$dir/w1-nchan.dat" using 1:(\$3>0?\$3:1/0) with linespoints dt 2 lc 3 title "nchan p50"
set output "$dir/cpu.png"
set ylabel "server CPU-seconds per million deliveries (log)"
set title "W1 server CPU per delivery (wcached: wcached + etcd; etcd direct: etcd; nchan: nginx workers)"
plot "$dir/w1-wcached.dat" using 1:5 with linespoints lw 2 lc 1 title "wcached", \
     "$dir/w1-etcd.dat" using 1:5 with linespoints lw 2 lc 2 title "etcd direct", \
     "$dir/w1-nchan.dat" using 1:5 with linespoints lw 2 lc 3 title "nchan"
EOF
fi
rm -f "$dir"/w1-*.dat
cat "$dir/report.md"
