#!/usr/bin/python3
"""etcd's API, read side, differential: the same range and watch requests sent to etcd's own
JSON gateway and to a wcached in front of it must get the same JSON answers, field by field
(the header's member_id and raft_term aside), with the same HTTP status; errors compare by
status and gRPC code where etcd's text is Go's own (a JSON decoder's message). Then tiers:
etcd -> wcached A -> wcached B and C (--etcd-endpoints A): every reader of B and C exact, no
relist, and etcd counting one watcher. Prints one line per check and "N passed, N failed"."""

import base64
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from cluster import WCACHED, Cluster, check, free_port, results, wait_until

PREFIX = "/p/"
# (revision, key, "PUT" or "DELETE") of each change the tests make, in order: what a watch
# has to have reported before a step goes on.
LOG = []


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def post(base, path, body, timeout=10):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except Exception:
            return e.code, {"raw": raw.decode(errors="replace")}


def strip(obj):
    """The answer without what differs by design: who answered (member_id, raft_term)."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in ("member_id", "raft_term")}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


class Watch:
    """One POST /v3/watch with a chunked body kept open, as etcd's clients send it: request
    lines go out as chunks while response lines come back."""

    def __init__(self, base, ctx=None):
        """ctx: an ssl.SSLContext for an https:// base."""
        host, port = base.split("://")[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        if ctx:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=host)
        self.sock.sendall(("POST /v3/watch HTTP/1.1\r\nHost: %s\r\n"
                           "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n" % host).encode())
        self.buf = b""
        self.body = b""
        self.headers_done = False
        self.lines = []
        self.lock = threading.Lock()
        self.closed = False
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def send(self, obj):
        line = (json.dumps(obj) + "\n").encode()
        self.sock.sendall(b"%x\r\n" % len(line) + line + b"\r\n")

    def _read(self):
        self.sock.settimeout(None)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    break
                self.buf += d
                self._parse()
        except OSError:
            pass
        self.closed = True

    def _parse(self):
        while not self.headers_done:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            if self.buf.startswith(b"HTTP/1.1 100"):  # Continue: the real answer follows
                self.buf = self.buf[i + 4:]
                continue
            self.status = int(self.buf.split(b" ", 2)[1])
            self.buf = self.buf[i + 4:]
            self.headers_done = True
        while True:  # chunks
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            n = int(self.buf[:i].split(b";")[0], 16)
            if len(self.buf) < i + 2 + n + 2:
                return
            self.body += self.buf[i + 2:i + 2 + n]
            self.buf = self.buf[i + 2 + n + 2:]
            while b"\n" in self.body:
                line, self.body = self.body.split(b"\n", 1)
                if line.strip():
                    with self.lock:
                        self.lines.append(json.loads(line))

    def snapshot(self):
        """Every line so far."""
        with self.lock:
            return list(self.lines)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def by_watch(lines):
    """Response lines grouped by watch_id, in order (streams may interleave watches)."""
    out = {}
    for l in lines:
        r = l.get("result", l)
        out.setdefault(r.get("watch_id", "0"), []).append(strip(l))
    return out


def etcd_put(c, key, value, lease=None):
    body = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = lease
    st, r = post(c.etcd_url, "/v3/kv/put", body)
    assert st == 200, r
    LOG.append((int(r["header"]["revision"]), key, "PUT"))
    return LOG[-1][0]


def etcd_del(c, key):
    st, r = post(c.etcd_url, "/v3/kv/deleterange", {"key": b64(key)})
    assert st == 200, r
    if int(r.get("deleted", 0)):
        LOG.append((int(r["header"]["revision"]), key, "DELETE"))
    return int(r["header"]["revision"])


def same(name, req, c, path="/v3/kv/range", codes_only=False):
    se, e = post(c.etcd_url, path, req)
    sw, w = post(c.base, path, req)
    if codes_only:
        check(name, se == sw and e.get("code") == w.get("code"),
              "etcd %d %s / wcached %d %s" % (se, e, sw, w))
    else:
        check(name, se == sw and strip(e) == strip(w),
              "etcd %d %s\n   wcached %d %s" % (se, strip(e), sw, strip(w)))
    return e, w


def range_table(c, revs):
    k, e = b64(PREFIX), b64("/p0")
    good = [
        ("prefix range", {"key": k, "range_end": e}),
        ("limit cuts with more and count", {"key": k, "range_end": e, "limit": 2}),
        ("limit as a string", {"key": k, "range_end": e, "limit": "3"}),
        ("limit at the count", {"key": k, "range_end": e, "limit": 5}),
        ("negative limit is none", {"key": k, "range_end": e, "limit": -1}),
        ("count_only", {"key": k, "range_end": e, "count_only": True}),
        ("count_only with limit", {"key": k, "range_end": e, "count_only": True, "limit": 1}),
        ("keys_only", {"key": k, "range_end": e, "keys_only": True}),
        ("one key", {"key": b64("/p/b")}),
        ("one key with a lease", {"key": b64("/p/leased")}),
        ("a key that is not there", {"key": b64("/p/zz")}),
        ("a deleted key", {"key": b64("/p/gone")}),
        ("a bounded range", {"key": b64("/p/b"), "range_end": b64("/p/d")}),
        ("an empty range", {"key": b64("/p/x"), "range_end": b64("/p/y")}),
        ("serializable", {"key": k, "range_end": e, "serializable": True}),
        ("camelCase names", {"key": k, "rangeEnd": e, "keysOnly": True, "countOnly": False}),
        ("sort by key, descending", {"key": k, "range_end": e, "sort_order": "DESCEND"}),
        ("sort by key, ascending, limit",
         {"key": k, "range_end": e, "sort_order": "ASCEND", "limit": 2}),
        ("sort by mod revision", {"key": k, "range_end": e, "sort_target": "MOD"}),
        ("sort by mod revision, descending, limit",
         {"key": k, "range_end": e, "sort_target": "MOD", "sort_order": "DESCEND", "limit": 3}),
        ("sort by create revision", {"key": k, "range_end": e, "sort_target": "CREATE",
                                     "sort_order": "DESCEND"}),
        ("sort by value", {"key": k, "range_end": e, "sort_target": "VALUE"}),
        ("sort order by number", {"key": k, "range_end": e, "sort_order": 2}),
        ("min_mod_revision", {"key": k, "range_end": e, "min_mod_revision": str(revs[3])}),
        ("max_mod_revision", {"key": k, "range_end": e, "max_mod_revision": str(revs[3])}),
        ("min and max create revision with limit",
         {"key": k, "range_end": e, "min_create_revision": str(revs[1]),
          "max_create_revision": str(revs[4]), "limit": 1}),
        ("unknown fields are ignored", {"key": k, "range_end": e, "nope": 1}),
    ]
    for rev in revs:
        good.append(("at revision %d" % rev, {"key": k, "range_end": e, "revision": str(rev)}))
        good.append(("at revision %d, count_only" % rev,
                     {"key": k, "range_end": e, "revision": rev, "count_only": True}))
    for name, req in good:
        same("range: " + name, req, c)
    cur = int(post(c.etcd_url, "/v3/kv/range", {"key": k})[1]["header"]["revision"])
    same("range: a future revision", {"key": k, "revision": str(cur + 100)}, c)
    same("range: no key", {}, c)
    same("range: an empty key", {"key": ""}, c)
    for name, body in [("not JSON", b"{bad"), ("bad base64", {"key": "@@"}),
                       ("a number for bytes", {"key": 123}),
                       ("an unknown sort order", {"key": k, "sort_order": "BOGUS"}),
                       ("an unknown sort target", {"key": k, "sort_target": "SIZE"})]:
        same("range: " + name + " (status and code)", body, c, codes_only=True)
    st, w = post(c.base, "/v3/kv/range", {"key": b64("/q/x")})
    check("range outside --etcd-prefix: 400, code 9 (FailedPrecondition)",
          st == 400 and w.get("code") == 9 and "prefix" in w.get("error", ""), w)
    st, w = post(c.base, "/v3/kv/range", {"key": k, "range_end": b64("\0")})
    check("range to the key space's end from inside the prefix: refused as outside it",
          st == 400 and w.get("code") == 9, w)
    for path in ("/v3/kv/put", "/v3/kv/deleterange", "/v3/kv/txn", "/v3/kv/compaction",
                 "/v3/lease/grant"):
        st, w = post(c.base, path, {"key": k, "value": k})
        check("write %s: 501, code 12" % path, st == 501 and w.get("code") == 12, w)


def in_watch(w, key, typ):
    """Whether watch w (a create_request's key, range_end and filters) reports this change."""
    k = base64.b64decode(w["key"]).decode()
    end = base64.b64decode(w["range_end"]).decode() if "range_end" in w else None
    inside = key == k if end is None else k <= key < end
    return inside and ("NO" + typ) not in w.get("filters", [])


def want_revs(watches, since):
    """The last revision each watch (watch_id -> (create_request, the revision it was
    created at)) has to have reported, from the log of the tests' writes, for those that
    have one to report."""
    out = {}
    for wid, (w, at) in watches.items():
        first = int(w["start_revision"]) if "start_revision" in w else at + 1
        revs = [r for r, key, typ in LOG if r >= max(first, since) and in_watch(w, key, typ)]
        if revs:
            out[wid] = max(revs)
    return out


def reported(lines):
    """The highest event revision each watch_id has reported on a stream."""
    out = {}
    for l in lines:
        r = l.get("result", {})
        for ev in r.get("events", []):
            wid = r.get("watch_id", "0")
            out[wid] = max(out.get(wid, 0), int(ev["kv"]["mod_revision"]))
    return out


def settle(streams, watches, since=0, more=lambda lines: True):
    """Waits until every stream has reported each watch's changes (in the write log, from
    revision `since`) and `more` holds of its lines: the streams are at the same point before
    the next step, which keeps live responses' header revisions comparable."""
    want = want_revs(watches, since)

    def done(s):
        lines = s.snapshot()
        got = reported(lines)
        return all(got.get(wid, 0) >= r for wid, r in want.items()) and more(lines)

    return wait_until(lambda: all(done(s) for s in streams.values()), 15)


def watch_table(c, revs):
    """The same watch requests on one stream to each; writes while both are open."""
    k, e = b64(PREFIX), b64("/p0")
    streams = {"etcd": Watch(c.etcd_url), "wcached": Watch(c.base)}
    reqs = [
        {"create_request": {"key": k, "range_end": e, "start_revision": str(revs[1]),
                            "prev_kv": True}},
        {"create_request": {"key": k, "range_end": e, "start_revision": revs[2],
                            "filters": ["NOPUT"]}},
        {"create_request": {"key": b64("/p/b"), "start_revision": str(revs[0])}},
        {"create_request": {"key": b64("/p/b"), "range_end": b64("/p/d")}},
        {"create_request": {"key": k, "range_end": e, "filters": ["NODELETE"],
                            "prev_kv": True}},
        {"create_request": {"key": k, "range_end": e, "watch_id": "7"}},
    ]
    at = LOG[-1][0]
    watches = {wid: (r["create_request"], at) for wid, r in zip(["0", "1", "2", "3", "4", "7"],
                                                                 reqs)}

    def count(what):
        return lambda lines: sum(1 for l in lines if l.get("result", {}).get(what)) >= n[what]

    n = {"created": len(reqs)}
    for name, s in streams.items():
        for r in reqs:
            s.send(r)
    settle(streams, watches, more=count("created"))
    # One write at a time, each sent on before the next (a live response's header carries
    # the revision the answering side is at when it sends it).
    for step in (lambda: etcd_put(c, "/p/b", "b3"),
                 lambda: (etcd_put(c, "/q/outside", "o"), etcd_put(c, "/p/c", "c2")),
                 lambda: etcd_del(c, "/p/c")):
        since = LOG[-1][0] + 1
        step()
        settle(streams, watches, since)
    # A transaction: two keys in one revision, one response.
    st, r = post(c.etcd_url, "/v3/kv/txn", {"success": [
        {"request_put": {"key": b64("/p/t1"), "value": b64("1")}},
        {"request_put": {"key": b64("/p/t2"), "value": b64("2")}}]})
    assert st == 200
    rev = int(r["header"]["revision"])
    LOG.extend([(rev, "/p/t1", "PUT"), (rev, "/p/t2", "PUT")])
    settle(streams, watches, rev)

    def progress(lines):
        return sum(1 for l in lines if l.get("result", {}).get("watch_id") == "-1" and
                   not l["result"].get("events")) >= n["progress"]

    n["progress"] = 1
    for s in streams.values():
        s.send({"progress_request": {}})
    settle(streams, watches, rev, more=progress)
    n["canceled"] = 1
    for s in streams.values():
        s.send({"cancel_request": {"watch_id": "1"}})
        s.send({"cancel_request": {"watch_id": "42"}})
    settle(streams, watches, rev, more=count("canceled"))
    del watches["1"]
    rev = etcd_put(c, "/p/after", "x")
    # Then a progress request: wcached answers it only once the stream carries everything
    # up to it, so a line that should not be there (for the canceled watch) is in by then.
    settle(streams, watches, rev)
    n["progress"] = 2
    for s in streams.values():
        s.send({"progress_request": {}})
    settle(streams, watches, rev, more=progress)
    got = {n: s.snapshot() for n, s in streams.items()}
    for s in streams.values():
        s.close()
    ge, gw = by_watch(got["etcd"]), by_watch(got["wcached"])
    check("watch: the same watches answered", sorted(ge) == sorted(gw), (sorted(ge), sorted(gw)))
    for wid in sorted(ge):
        check("watch %s: the same responses, in order" % wid, ge[wid] == gw.get(wid),
              "\n etcd    %s\n wcached %s" % (ge[wid], gw.get(wid)))
    check("watch: a streaming body is answered while it stays open",
          streams["wcached"].status == 200 and len(got["wcached"]) > 10, got["wcached"][:3])


def whole_body_reader(base, create, n, timeout):
    """A watch whose body (one create_request) is sent whole, read on a thread until n lines
    came: the thread, and the list its lines are appended to, parsed."""
    body = (json.dumps({"create_request": create}) + "\n").encode()
    req = urllib.request.Request(base + "/v3/watch", data=body, method="POST")
    lines = []

    def reader():
        with urllib.request.urlopen(req, timeout=timeout) as r:
            for line in r:
                lines.append(json.loads(line))
                if len(lines) == n:
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    return t, lines


def whole_body_watch(c):
    """A body sent whole (curl -d): the watch still streams after it."""
    t, lines = whole_body_reader(c.base, {"key": b64(PREFIX), "range_end": b64("/p0")}, 2, 10)
    wait_until(lambda: len(lines) >= 1, 5)
    rev = etcd_put(c, "/p/whole", "w")
    t.join(10)
    ok = (len(lines) == 2 and lines[0]["result"].get("created") and
          lines[1]["result"]["events"][0]["kv"]["mod_revision"] == str(rev))
    check("watch with a whole body (Content-Length): created, then events", ok, lines)


def sent_at_once():
    """An etcd watch is sent each change as it comes, as etcd's gateway does, even where the
    server gathers other watch streams' events (--coalesce-ms): a tier below would otherwise add
    that wait to its own readers'. With --coalesce-ms 1000, a stream that gathered would hold
    each change made right after the one it was just sent for the rest of that second, so ten
    changes made one after another, each once the previous one arrived, would take at least
    nine seconds; sent at once, they take as long as ten puts."""
    c = Cluster(args=["--etcd-prefix", PREFIX, "--coalesce-ms", "1000"])
    try:
        t, lines = whole_body_reader(c.base, {"key": b64("/p/now")}, 11, 30)
        wait_until(lambda: len(lines) >= 1, 10)
        t0, revs = time.monotonic(), []
        for i in range(10):
            revs.append(str(etcd_put(c, "/p/now", str(i))))
            wait_until(lambda: len(lines) >= i + 2, 20)
        took = time.monotonic() - t0
        t.join(5)
        got = [ln["result"]["events"][0]["kv"]["mod_revision"] for ln in lines[1:]
               if ln["result"].get("events")]
        check("an etcd watch gets each of ten changes, in order", got == revs, lines)
        check("an etcd watch is sent each change at once, not gathered for --coalesce-ms",
              took < 9.0, "%.1f s for ten changes" % took)
    finally:
        c.close()


def slow_reader(c):
    """A reader that stops reading its etcd watch is cut off, as any watch (the slow-reader
    budget, then the grace for a full socket): wcached does not hold its events for ever."""
    host, port = c.base[len("http://"):].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((host, int(port)))
    line = (json.dumps({"create_request": {"key": b64(PREFIX), "range_end": b64("/p0")}})
            + "\n").encode()
    sock.sendall(b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                 % len(line) + line)
    # Transactions of 100 puts until its watcher is ended (too slow, or out of the ring),
    # up to far more than the socket buffers and the watcher's queue (1,000 events for a
    # watcher the --index-field cannot narrow) hold.
    def lagged():
        m = get(c.base + "/metrics")[1].decode()
        return sum(int(l.split()[-1]) for l in m.splitlines()
                   if l.startswith("wcached_watchers_terminated_total") and
                   ('"slow"' in l or '"expired"' in l))

    before = lagged()
    val = b64("x" * 4096)
    for i in range(60):
        st, _ = post(c.etcd_url, "/v3/kv/txn", {"success": [
            {"request_put": {"key": b64("/p/slow/%d" % j), "value": val}} for j in range(100)]})
        assert st == 200
        if lagged() > before:
            break
    sock.settimeout(30)
    how, tail = "timeout", b""
    try:
        while True:
            d = sock.recv(1 << 20)
            if not d:
                how = "closed"
                break
            tail = (tail + d)[-4096:]
            if b'"canceled":true' in tail:
                how = "canceled"
                break
    except socket.timeout:
        pass
    except OSError:
        how = "closed"  # reset: cut off
    sock.close()
    check("etcd watch: a reader that stops reading has its watch canceled or is cut off",
          how in ("canceled", "closed"), how)
    st, _ = post(c.etcd_url, "/v3/kv/deleterange",
                 {"key": b64("/p/slow/"), "range_end": b64("/p/slow0")})
    assert st == 200


def compacted(c):
    """Both sides compacted: a range at an old revision and a watch from it."""
    k = b64(PREFIX)
    # Past wcached's ring (--ring-size 50) and past etcd's compaction.
    for i in range(80):
        etcd_put(c, "/p/bulk/%02d" % i, "v%d" % i)
    cur = etcd_put(c, "/p/bulk/last", "z")
    st, r = post(c.etcd_url, "/v3/kv/compaction", {"revision": str(cur - 1)})
    assert st == 200, r
    wait_until(lambda: post(c.base, "/v3/kv/range", {"key": k})[1].get("header", {})
               .get("revision") == str(cur), 5)
    same("range: a compacted revision", {"key": k, "revision": "3"}, c)
    res = {}
    for name, base in (("etcd", c.etcd_url), ("wcached", c.base)):
        w = Watch(base)
        w.send({"create_request": {"key": k, "range_end": b64("/p0"), "start_revision": "3"}})
        wait_until(lambda: any(l["result"].get("canceled") for l in w.snapshot()), 10)
        res[name] = w.snapshot()
        w.close()
    shape = {n: [{kk: v for kk, v in strip(l)["result"].items() if kk != "compact_revision"}
                 for l in ls] for n, ls in res.items()}
    both = all(len(ls) == 2 and "compact_revision" in ls[1]["result"] for ls in res.values())
    check("watch from a compacted revision: created, then canceled with compact_revision",
          both and shape["etcd"] == shape["wcached"], res)


def start_tier(a, name, endpoints, args=()):
    """A wcached reading `endpoints` (A, the wcached of cluster a, first), logging into a's
    folder: (its process, its base URL)."""
    port = free_port()
    p = subprocess.Popen(
        [WCACHED, "--listen", "127.0.0.1:%d" % port, "--etcd-endpoints", endpoints,
         "--etcd-prefix", PREFIX] + list(args),
        stdout=subprocess.DEVNULL, stderr=open("%s/wcached-%s.log" % (a.dir, name), "w"))
    p.log = "%s/wcached-%s.log" % (a.dir, name)
    return p, "http://127.0.0.1:%d" % port


def https_tier():
    """A kept-open watch body over HTTPS: wcached B reads an HTTPS A (--etcd-cacert) through
    one, its consistent reads sending progress requests up the same body; and a reader's
    stream takes a create, a second create and a cancel, each answered on it."""
    import tempfile
    from test_tls import make_ca, make_cert
    d = tempfile.mkdtemp(prefix="wcached-etcd-https-")
    make_ca(d, "ca")
    make_cert(d, "server", "ca", "wcached-a", usage="tls_www_server")
    a = Cluster(tls_ca=d + "/ca.crt",
                args=["--etcd-prefix", PREFIX, "--tls-cert-file", d + "/server.crt",
                      "--tls-private-key-file", d + "/server.key"])
    b, bbase = start_tier(a, "B", a.base, ["--etcd-cacert", d + "/ca.crt"])
    try:
        check("https tier: B gets ready reading A over HTTPS",
              wait_until(lambda: get(bbase + "/readyz")[0] == 200, 15), get(bbase + "/readyz"))
        for i in range(3):
            etcd_put(a, "/p/h%d" % i, "v%d" % i)
            # A consistent list on B waits for B's progress request, sent up its body.
            check("https tier: B's consistent list has write %d" % i,
                  (keys_list(bbase) or {}).get("/p/h%d" % i, ("",))[0] == "v%d" % i,
                  keys_list(bbase))
        w = Watch(a.base, ctx=a.ssl)

        def results_of(pred):
            return [l["result"] for l in w.snapshot() if pred(l.get("result", {}))]

        w.send({"create_request": {"key": b64("/p/h0")}})
        check("https watch: created", wait_until(
            lambda: len(results_of(lambda r: r.get("created"))) == 1, 10), w.snapshot())
        r1 = etcd_put(a, "/p/h0", "again")
        # etcd has r1 now, A's cache a moment later: the cancel must not overtake it.
        wait_until(lambda: results_of(lambda r: r.get("events") and
                                      r.get("watch_id", "0") == "0"), 10)
        w.send({"create_request": {"key": b64("/p/h1"), "watch_id": "5"}})
        check("https watch: a second create on the same body",
              wait_until(lambda: len(results_of(lambda r: r.get("created"))) == 2, 10),
              w.snapshot())
        w.send({"cancel_request": {"watch_id": "0"}})
        check("https watch: the cancel on the same body", wait_until(
            lambda: results_of(lambda r: r.get("canceled")), 10), w.snapshot())
        r2 = etcd_put(a, "/p/h0", "after the cancel")
        r3 = etcd_put(a, "/p/h1", "to the second")
        wait_until(lambda: results_of(lambda r: r.get("watch_id") == "5" and r.get("events")), 10)
        got = [(r.get("watch_id", "0"), [int(e["kv"]["mod_revision"]) for e in r["events"]])
               for r in results_of(lambda r: r.get("events"))]
        check("https watch: the events of each watch, none after the cancel",
              w.status == 200 and got == [("0", [r1]), ("5", [r3])], (got, r2))
        w.close()
    finally:
        b.terminate()
        b.wait(10)
        a.close()
    check("https tier: A and B exit cleanly (status 0)",
          (a.wcached.returncode, b.returncode) == (0, 0), (a.wcached.returncode, b.returncode))


def tiers():
    """etcd -> A -> B, C: each reader of B and C sees exactly etcd's state, nobody relists,
    and etcd serves one watcher (A's)."""
    a = Cluster(args=["--etcd-prefix", PREFIX])
    procs = []
    try:
        subs = []
        for name in ("B", "C"):
            p, base = start_tier(a, name, a.base)
            procs.append(p)
            subs.append((name, base))
        for name, base in subs:
            check("tier %s gets ready reading A" % name,
                  wait_until(lambda: get(base + "/readyz")[0] == 200, 15))
        # A reflector-style reader on B and on C: list, then watch from the list's RV.
        readers = [Reflector(base) for _, base in subs]
        for i in range(150):
            etcd_put(a, "/p/k%03d" % (i % 40), "v%d" % i)
            if i % 7 == 0:
                etcd_del(a, "/p/k%03d" % ((i * 3) % 40))
            if i % 10 == 0:
                etcd_put(a, "/q/outside", str(i))
        want = {kv["key"]: (kv.get("value", ""), kv["mod_revision"]) for kv in
                post(a.etcd_url, "/v3/kv/range", {"key": b64(PREFIX), "range_end": b64("/p0")})
                [1].get("kvs", [])}
        want = {base64.b64decode(k).decode(): (base64.b64decode(v).decode(), int(m))
                for k, (v, m) in want.items()}
        for (name, base), r in zip(subs, readers):
            check("tier %s: a consistent list equals etcd's state" % name,
                  wait_until(lambda: keys_list(base) == want, 10), keys_list(base))
            check("tier %s: the watch reader's state equals etcd's" % name,
                  wait_until(lambda: r.state == want, 10),
                  sorted(set(r.state.items()) ^ set(want.items()))[:5])
            r.stop()
        for name, base in subs:
            m = get(base + "/metrics")[1].decode()
            relists = [l for l in m.splitlines() if l.startswith("wcached_relists_total")]
            check("tier %s: no relist" % name, relists == ["wcached_relists_total 0"], relists)
        m = urllib.request.urlopen(a.etcd_url + "/metrics", timeout=5).read().decode()
        watchers = [l for l in m.splitlines()
                    if l.startswith("etcd_debugging_mvcc_watcher_total")]
        check("etcd serves one watcher for the whole tree",
              watchers == ["etcd_debugging_mvcc_watcher_total 1"], watchers)
    finally:
        codes = []
        for p in procs:
            p.terminate()
            codes.append(p.wait(10))
        a.close()
    check("tiers B, C and A exit cleanly (status 0)",
          codes == [0, 0] and a.wcached.returncode == 0, (codes, a.wcached.returncode))


def failover():
    """B and C read A, with etcd itself as their second endpoint; A is killed (-9) while
    writes go on: B and C go on from etcd where they were, every reader stays exact, nobody
    relists. B sends a bearer token (A, with no --token-auth-file, takes no notice of it):
    etcd, with its own auth off, refuses the token, and B goes on there without it."""
    a = Cluster(args=["--etcd-prefix", PREFIX])
    procs = []
    with open(a.dir + "/token", "w") as f:
        f.write("a-token-for-a\n")
    try:
        subs = []
        for name, args in (("B", ["--etcd-token-file", a.dir + "/token"]), ("C", [])):
            p, base = start_tier(a, name, a.base + "," + a.etcd_url, args)
            procs.append(p)
            subs.append((name, base))
        for name, base in subs:
            check("failover: tier %s gets ready reading A" % name,
                  wait_until(lambda: get(base + "/readyz")[0] == 200, 15))
        readers = [Reflector(base) for _, base in subs]
        for i in range(120):
            etcd_put(a, "/p/f%03d" % (i % 30), "v%d" % i)
            if i % 9 == 0:
                etcd_del(a, "/p/f%03d" % ((i * 7) % 30))
            if i == 40:
                a.wcached.send_signal(signal.SIGKILL)
        want = {base64.b64decode(kv["key"]).decode():
                (base64.b64decode(kv.get("value", "")).decode(), int(kv["mod_revision"]))
                for kv in post(a.etcd_url, "/v3/kv/range",
                               {"key": b64(PREFIX), "range_end": b64("/p0")})[1].get("kvs", [])}
        for (name, base), r in zip(subs, readers):
            check("failover: tier %s's consistent list equals etcd's state" % name,
                  wait_until(lambda: keys_list(base) == want, 20), keys_list(base))
            check("failover: tier %s's watch reader equals etcd's state" % name,
                  wait_until(lambda: r.state == want, 10),
                  sorted(set(r.state.items()) ^ set(want.items()))[:5])
            r.stop()
            m = get(base + "/metrics")[1].decode()
            relists = [l for l in m.splitlines() if l.startswith("wcached_relists_total")]
            check("failover: tier %s did not relist" % name,
                  relists == ["wcached_relists_total 0"], relists)
            moved = sum(int(l.split()[-1]) for l in m.splitlines()
                        if l.startswith("wcached_upstream_reconnects_total"))
            check("failover: tier %s reconnected (to etcd)" % name, moved >= 1, moved)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        a.close()


def auth():
    """/v3/ is a non-resource path read with "get": a policy names it or the reader gets 403;
    no token, 401."""
    import tempfile
    d = tempfile.mkdtemp(prefix="wcached-etcd-auth-")
    with open(d + "/tokens", "w") as f:
        f.write("etcd-token,etcdreader,1\nother-token,other,2\ntier-token-7f3a,etcdreader,3\n")
    with open(d + "/policy", "w") as f:
        f.write(json.dumps({"apiVersion": "abac.authorization.kubernetes.io/v1beta1",
                            "kind": "Policy", "spec": {"user": "etcdreader",
                                                       "nonResourcePath": "/v3/*",
                                                       "readonly": True}}) + "\n")
    c = Cluster(args=["--etcd-prefix", PREFIX, "--token-auth-file", d + "/tokens",
                      "--authorization-policy-file", d + "/policy"])
    try:
        etcd_put(c, "/p/secret", "s")
        body = json.dumps({"key": b64("/p/secret")}).encode()
        for token, want in ((None, 401), ("other-token", 403), ("etcd-token", 200)):
            req = urllib.request.Request(c.base + "/v3/kv/range", data=body, method="POST")
            if token:
                req.add_header("Authorization", "Bearer " + token)
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    code = r.status
            except urllib.error.HTTPError as e:
                code = e.code
            check("auth: range with %s: %d" % (token or "no token", want), code == want, code)
        tier_tokens(c, d)
    finally:
        c.close()


def tier_tokens(a, d):
    """A tier below a wcached that wants bearer tokens (A: --token-auth-file, a policy that
    lets etcdreader read /v3/*): B with --etcd-token-file reads A; C with a token A does not
    know says so in its log and /readyz without spinning, and is let in once its token file is
    fixed and SIGHUP reads it again. Neither logs its token."""
    with open(d + "/token-b", "w") as f:
        f.write("tier-token-7f3a\n")
    with open(d + "/token-c", "w") as f:
        f.write("wrong-token-91c2\n")
    b, bbase = start_tier(a, "B", a.base, ["--etcd-token-file", d + "/token-b"])
    c, cbase = start_tier(a, "C", a.base, ["--etcd-token-file", d + "/token-c"])
    n, nbase = start_tier(a, "N", a.base)
    try:
        check("token tier: B with A's token gets ready",
              wait_until(lambda: get(bbase + "/readyz")[0] == 200, 15))
        check("token tier: B serves what A has",
              wait_until(lambda: (keys_list(bbase) or {}).get("/p/secret", ("",))[0] == "s", 10),
              keys_list(bbase))

        def reason():
            st, body = get(cbase + "/readyz")
            return st, body.decode(errors="replace")

        check("token tier: C with a wrong token says HTTP 401 in /readyz",
              wait_until(lambda: "HTTP 401" in reason()[1], 15) and reason()[0] == 503, reason())
        check("token tier: N with no token says HTTP 401 in /readyz",
              wait_until(lambda: "HTTP 401" in get(nbase + "/readyz")[1].decode(), 15),
              get(nbase + "/readyz"))
        with open(c.log) as f:
            log = f.read()
        check("token tier: C's log names the 401", "HTTP 401" in log, log[-600:])

        def attempts():
            m = get(cbase + "/metrics")[1].decode()
            return sum(int(l.split()[-1]) for l in m.splitlines()
                       if l.startswith("wcached_upstream_reconnects_total"))

        # A bound a spinning retry would pass a thousand times over (the backoff allows 8).
        first = attempts()
        time.sleep(2)
        check("token tier: C retries with a backoff, not in a loop",
              attempts() - first < 40, attempts() - first)
        with open(d + "/token-c", "w") as f:
            f.write("tier-token-7f3a\n")
        c.send_signal(signal.SIGHUP)
        check("token tier: C gets ready once SIGHUP read its fixed token file",
              wait_until(lambda: get(cbase + "/readyz")[0] == 200, 15), reason())
        # etcd, with its auth off, refuses every bearer token: a tier reading it directly (or
        # after its wcached above died, see failover) sends it none there.
        e, ebase = start_tier(a, "E", a.etcd_url, ["--etcd-token-file", d + "/token-b"])
        check("token tier: E with a token reads etcd itself (which refuses the token)",
              wait_until(lambda: (keys_list(ebase) or {}).get("/p/secret", ("",))[0] == "s", 15),
              keys_list(ebase))
        e.terminate()
        e.wait(10)
    finally:
        for p in (b, c, n):
            p.terminate()
            p.wait(10)
    logs = ""
    for p in (b, c):
        with open(p.log) as f:
            logs += f.read()
    check("token tier: B and C exit cleanly (status 0)",
          (b.returncode, c.returncode) == (0, 0), (b.returncode, c.returncode))
    check("token tier: no token in a log", "tier-token-7f3a" not in logs and
          "wrong-token-91c2" not in logs, logs[-600:])


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except Exception as e:  # HTTPError carries the code and body; others: not up
        return getattr(e, "code", 0), e.read() if hasattr(e, "read") else b""


def keys_list(base):
    st, body = get(base + "/keys/p/")
    if st != 200:
        return None
    return {i["key"]: (i["value"], i["modRevision"]) for i in json.loads(body)["items"]}


class Reflector:
    """A list, then a watch from its resourceVersion, applied to a map."""

    def __init__(self, base):
        st, body = get(base + "/keys/p/")
        lst = json.loads(body)
        self.state = {i["key"]: (i["value"], i["modRevision"]) for i in lst["items"]}
        rv = lst["metadata"]["resourceVersion"]
        self.resp = urllib.request.urlopen(base + "/keys/p/?watch=1&resourceVersion=" + rv,
                                           timeout=30)
        # Closing the response waits for the reading thread's recv; shutting the socket
        # down ends that recv at once.
        self.sock = self.resp.fp.raw._sock
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            for line in self.resp:
                ev = json.loads(line)
                o = ev["object"]
                if ev["type"] == "DELETED":
                    self.state.pop(o["key"], None)
                elif ev["type"] in ("ADDED", "MODIFIED"):
                    self.state[o["key"]] = (o["value"], o["modRevision"])
        except Exception:
            pass

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.resp.close()
        except Exception:
            pass


def main():
    c = Cluster(ring_size=50, args=["--etcd-prefix", PREFIX])
    try:
        revs = [etcd_put(c, "/p/a", "a1")]
        revs.append(etcd_put(c, "/p/b", "b1"))
        revs.append(etcd_put(c, "/p/c", "c1"))
        etcd_put(c, "/a/outside", "before the prefix")
        revs.append(etcd_put(c, "/p/gone", "g"))
        revs.append(etcd_put(c, "/p/b", "b2"))
        etcd_del(c, "/p/gone")
        st, lease = post(c.etcd_url, "/v3/lease/grant", {"TTL": "600"})
        etcd_put(c, "/p/leased", "l", lease=lease["ID"])
        etcd_put(c, "/p/d", "d1")
        etcd_put(c, "/q/x", "outside, last")
        range_table(c, revs)
        watch_table(c, revs)
        whole_body_watch(c)
        slow_reader(c)
        compacted(c)
    finally:
        c.close()
    # Under the sanitizers a leak or an error shows as the exit status.
    check("wcached exits cleanly after the streams (status 0)", c.wcached.returncode == 0,
          c.wcached.returncode)
    sent_at_once()
    auth()
    tiers()
    failover()
    https_tier()
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
