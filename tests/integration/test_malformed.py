#!/usr/bin/python3
"""Bad input of every kind against a live wcached over a real etcd: each malformed request in
the table gets the right 4xx Status (or, for bytes that are not HTTP, a close) within a bounded
time, and the daemon stays correct afterwards: a watch opened before the barrage receives every
change made during it, each once and in order, and a list equals etcd's keys. Prints one line
per check and "N passed, N failed"."""

import base64
import json
import os
import socket
import sys
import threading
import time

from cluster import Cluster, check, pod, results, wait_until

HEADER_TIMEOUT_MS = 1500
# The request bounds, set away from their defaults (the target's from the environment), so the
# table shows each moves with its setting.
MAX_PARAMS, MAX_URI, MAX_PAGE, MAX_TIMEOUT = 32, 8192, 2, 600


def exchange(port, data, timeout=10):
    """Sends `data` on a connection of its own; returns (code or None, headers, body, seconds)
    once the server answered in whole and closed, or closed without an answer."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close before it took everything
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    took = time.monotonic() - t0
    if not out.startswith(b"HTTP/"):
        return None, "", out, took
    head, _, body = out.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    return code, head.decode("latin-1"), body, took


def get(path, extra=""):
    return ("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n" % (path, extra)).encode()


def status_of(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}


# (name, request bytes, expected code or None for a close without an answer, the Status reason
# or None when libmicrohttpd answers, a word the message must hold)
TABLE = [
    ("resourceVersion not a number", get("/api/v1/pods?resourceVersion=abc"), 400,
     "BadRequest", "resourceVersion"),
    ("resourceVersion negative", get("/api/v1/pods?resourceVersion=-1"), 400, "BadRequest",
     "resourceVersion"),
    ("resourceVersionMatch unknown", get("/api/v1/pods?resourceVersion=1&resourceVersionMatch=Nope"),
     400, "BadRequest", "resourceVersionMatch"),
    ("resourceVersionMatch without resourceVersion",
     get("/api/v1/pods?resourceVersionMatch=Exact"), 400, "BadRequest", "resourceVersionMatch"),
    ("labelSelector unbalanced", get("/api/v1/pods?labelSelector=app%20in%20(web"), 400,
     "BadRequest", "labelSelector"),
    ("fieldSelector on an unsupported field", get("/api/v1/pods?fieldSelector=spec.nope%3Dx"),
     400, "BadRequest", "fieldSelector"),
    ("continue not base64", get("/api/v1/pods?continue=%25%25%25"), 400, "BadRequest",
     "continue"),
    ("continue that decodes to nothing of ours",
     get("/api/v1/pods?continue=" + base64.urlsafe_b64encode(b"garbage").decode()), 400,
     "BadRequest", "continue"),
    ("limit negative", get("/api/v1/pods?limit=-1"), 400, "BadRequest", "limit"),
    ("limit not a number", get("/api/v1/pods?limit=ten"), 400, "BadRequest", "limit"),
    ("timeoutSeconds negative", get("/api/v1/pods?watch=1&timeoutSeconds=-5"), 400,
     "BadRequest", "timeoutSeconds"),
    ("watch neither true nor false", get("/api/v1/pods?watch=maybe"), 400, "BadRequest",
     "watch"),
    ("allowWatchBookmarks not a bool", get("/api/v1/pods?watch=1&allowWatchBookmarks=2x"), 400,
     "BadRequest", "allowWatchBookmarks"),
    ("unknown resource", get("/api/v1/widgets"), 404, "NotFound", ""),
    ("unknown group", get("/apis/nope.example.com/v1/things"), 404, "NotFound", ""),
    ("unknown route", get("/nowhere"), 404, "NotFound", ""),
    ("namespace that is no DNS label", get("/api/v1/namespaces/Bad_NS/pods"), 400,
     "BadRequest", ""),
    ("dot-dot in a /keys path", get("/keys/registry/../etc"), 400, "BadRequest", ""),
    ("percent-encoded dot-dot", get("/keys/registry/%2e%2e/etc"), 400, "BadRequest", ""),
    ("NUL in a key", get("/keys/registry/a%00b"), 400, "BadRequest", ""),
    ("bad percent-encoding", get("/keys/registry/%zz"), 400, "BadRequest", ""),
    ("a write verb", b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 2\r\nConnection: close\r\n\r\n{}", 405, "MethodNotAllowed", ""),
    ("DELETE", b"DELETE /keys/registry/pods/default/a HTTP/1.1\r\nHost: x\r\n"
     b"Connection: close\r\n\r\n", 405, "MethodNotAllowed", ""),
    ("65 query parameters", get("/api/v1/pods?" + "&".join("p%d=1" % i for i in range(65))),
     414, "BadRequest", "query parameters"),
    ("one query parameter past --max-query-params",
     get("/api/v1/pods?" + "&".join("p%d=1" % i for i in range(MAX_PARAMS + 1))), 414,
     "BadRequest", "more than %d query parameters" % MAX_PARAMS),
    ("a request-target a byte past WCACHED_MAX_URI_BYTES",
     get("/keys/?pad=" + "a" * (MAX_URI + 1 - len("/keys/?pad="))), 414, "BadRequest",
     "%d bytes" % MAX_URI),
    ("timeoutSeconds past --max-timeout-seconds",
     get("/api/v1/pods?watch=1&timeoutSeconds=%d" % (MAX_TIMEOUT + 1)), 400, "BadRequest",
     "at most %d seconds" % MAX_TIMEOUT),
    ("a 20 KiB request-target", get("/keys/" + "a" * 20000), 414, "BadRequest", ""),
    ("20 KiB of header fields", get("/healthz", "X-Pad: " + "a" * 20000 + "\r\n"), 431,
     "BadRequest", "header"),
    # 2,000 fields of 5 bytes: under --max-header-bytes, but their records overflow the
    # connection's buffer, and libmicrohttpd answers itself before wcached sees the request
    ("2,000 tiny header fields", get("/healthz", "a:b\r\n" * 2000), 431, None, None),
    ("bytes that are not HTTP", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n",
     None, None, None),
    # libmicrohttpd answers a request line it cannot parse itself, before wcached sees it
    ("a request line of garbage", b"xx yy\r\n\r\n", 400, None, None),
]


def main():
    os.environ["WCACHED_MAX_URI_BYTES"] = str(MAX_URI)
    try:
        c = Cluster(args=["--header-timeout-ms", str(HEADER_TIMEOUT_MS),
                          "--max-query-params", str(MAX_PARAMS), "--max-page-size", str(MAX_PAGE),
                          "--max-timeout-seconds", str(MAX_TIMEOUT)])
    finally:
        del os.environ["WCACHED_MAX_URI_BYTES"]
    try:
        c.put("/registry/pods/default/p0", pod("p0", "default", "n1"))
        status, body = c.get("/api/v1/pods")
        rv = json.loads(body)["metadata"]["resourceVersion"]
        # A watch from before the barrage: it must see every change made during it.
        got = []
        done = threading.Event()

        def reader():
            with socket.create_connection(("127.0.0.1", c.port), timeout=30) as s:
                s.sendall(get("/api/v1/pods?watch=1&resourceVersion=%s" % rv))
                buf = b""
                while not done.is_set():
                    try:
                        chunk = s.recv(65536)
                    except socket.timeout:
                        break
                    if not chunk:
                        break
                    buf += chunk
                    # whole lines only; the chunks' hex sizes are lines between them
                    lines = buf.split(b"\n")
                    buf = lines[-1]
                    for line in lines[:-1]:
                        line = line.strip()
                        if line.startswith(b"{"):
                            ev = json.loads(line)
                            got.append((ev["type"], ev["object"]["metadata"]["name"],
                                        int(ev["object"]["metadata"]["resourceVersion"])))

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        wait_until(lambda: c.get("/metrics")[1].find(b"wcached_watchers 1\n") >= 0, 10)

        written = []
        for i, (name, req, code, reason, word) in enumerate(TABLE):
            # a change between every two bad requests, for the watch to account for
            key = "p%d" % (i + 1)
            c.put("/registry/pods/default/" + key, pod(key, "default", "n1"))
            written.append(key)
            got_code, head, body, took = exchange(c.port, req)
            if code is None:
                check(name + ": closed without an answer", got_code is None and took < 5,
                      "%s in %.1fs: %r" % (got_code, took, body[:200]))
                continue
            if reason is None:
                check("%s: %d, then closed" % (name, code), got_code == code and took < 5,
                      "%s in %.1fs: %r" % (got_code, took, body[:200]))
                continue
            st = status_of(body)
            ok = (got_code == code and st.get("kind") == "Status" and st.get("code") == code and
                  st.get("reason") == reason and word in st.get("message", ""))
            check("%s: %d %s" % (name, code, reason), ok,
                  "%s %r" % (got_code, body[:300]))

        # A request whose headers never end is closed by the header deadline.
        _, _, _, took = exchange(c.port, b"GET /healthz HTTP/1.1\r\nHo")
        check("a half-sent request is closed by --header-timeout-ms",
              HEADER_TIMEOUT_MS / 1000 - 0.5 <= took < HEADER_TIMEOUT_MS / 1000 + 5,
              "closed after %.1fs" % took)
        # A body announced and never sent: the same deadline.
        _, _, _, took = exchange(
            c.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        check("a half-sent body is closed in bounded time", took < HEADER_TIMEOUT_MS / 1000 + 5,
              "closed after %.1fs" % took)

        # Up to each bound, a request is served as usual.
        code, _, body, _ = exchange(
            c.port, get("/api/v1/pods?" + "&".join("p%d=1" % i for i in range(MAX_PARAMS))))
        check("--max-query-params parameters are served", code == 200, "%s %r" % (code, body[:200]))
        code, _, body, _ = exchange(
            c.port, get("/keys/?pad=" + "a" * (MAX_URI - len("/keys/?pad="))))
        check("a request-target of WCACHED_MAX_URI_BYTES is served", code == 200,
              "%s %r" % (code, body[:200]))
        with socket.create_connection(("127.0.0.1", c.port), timeout=10) as s:
            s.sendall(get("/api/v1/pods?watch=1&timeoutSeconds=%d" % MAX_TIMEOUT))
            head = s.recv(4096)
        check("a watch of --max-timeout-seconds is served", head.startswith(b"HTTP/1.1 200 "),
              head[:200])
        status, body = c.get("/api/v1/pods?limit=100")
        page = json.loads(body) if status == 200 else {}
        check("a limit past --max-page-size is served as pages of that size",
              len(page.get("items", [])) == MAX_PAGE and page["metadata"].get("continue"),
              "%s %r" % (status, body[:200]))

        # Still correct afterwards.
        status, body = c.get("/healthz")
        check("healthz after the barrage", status == 200, status)
        want = ["p%d" % (i + 1) for i in range(len(TABLE))]
        check("the watch from before got every change, once, in order",
              wait_until(lambda: len(got) >= len(want), 15) and
              [g[1] for g in got] == want and all(g[0] == "ADDED" for g in got) and
              [g[2] for g in got] == sorted(g[2] for g in got),
              "%d of %d: %s" % (len(got), len(want), got[:5]))
        done.set()
        status, body = c.get("/api/v1/pods")
        names = sorted(o["metadata"]["name"] for o in json.loads(body)["items"])
        etcd_keys = sorted(l.rsplit("/", 1)[1] for l in
                           c.ctl("get", "--prefix", "--keys-only", "/registry/pods/").stdout.split()
                           if l)
        check("a list equals etcd's keys", status == 200 and names == etcd_keys,
              "%s vs %s" % (names[:5], etcd_keys[:5]))
        log = open(c.dir + "/wcached.log").read()
        check("the daemon logged no crash or sanitizer report",
              "ERROR: AddressSanitizer" not in log and "runtime error" not in log and
              "ThreadSanitizer" not in log, log[-500:])
        check("the daemon is still running", c.wcached.poll() is None, c.wcached.poll())
    finally:
        c.close()
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
