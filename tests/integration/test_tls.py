#!/usr/bin/python3
"""HTTPS against a live wcached over a real etcd, with certificates made here by certtool:
get, list and watch over TLS (events exact, a clean end, a reader that leaves), bearer tokens
over HTTPS, client certificates (CN the user, each O a group) under an ABAC policy, certificates
that are not valid (401), TLS 1.1 refused, a certificate swapped by SIGHUP while a stream stays
open, and bad flags. Prints one line per check and "N passed, N failed"."""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from cluster import WCACHED, Cluster, check, pod, results, wait_until

TOKENS = "root-token,root,1,admins\nalice-token,alice,2\n"
POLICY = [
    {"user": "alice", "namespace": "default", "resource": "pods", "apiGroup": "*",
     "readonly": True},
    {"group": "ops", "nonResourcePath": "/metrics", "readonly": True},
    {"group": "system:authenticated", "nonResourcePath": "/api*", "readonly": True},
    {"group": "admins", "namespace": "*", "resource": "*", "apiGroup": "*",
     "nonResourcePath": "*", "readonly": True},
]


def certtool(*args):
    subprocess.run(["certtool"] + list(args), check=True, capture_output=True)


def make_ca(d, name):
    open("%s/%s.tmpl" % (d, name), "w").write(
        'cn = "%s"\nca\ncert_signing_key\nexpiration_days = 2\n' % name)
    certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", "%s/%s.key" % (d, name))
    certtool("--generate-self-signed", "--load-privkey", "%s/%s.key" % (d, name), "--template",
             "%s/%s.tmpl" % (d, name), "--outfile", "%s/%s.crt" % (d, name))


def make_cert(d, name, ca, cn, orgs=(), usage="tls_www_client", key=None):
    """A certificate NAME.crt (and key NAME.key, unless `key` names one to reuse) signed by ca."""
    tmpl = 'cn = "%s"\n' % cn + "".join('organization = "%s"\n' % o for o in orgs)
    if usage == "tls_www_server":
        tmpl += 'ip_address = "127.0.0.1"\ndns_name = "localhost"\n'
    tmpl += usage + "\nsigning_key\nexpiration_days = 2\n"
    open("%s/%s.tmpl" % (d, name), "w").write(tmpl)
    keyfile = key or "%s/%s.key" % (d, name)
    if not key:
        certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", keyfile)
    certtool("--generate-certificate", "--load-privkey", keyfile, "--load-ca-certificate",
             "%s/%s.crt" % (d, ca), "--load-ca-privkey", "%s/%s.key" % (d, ca), "--template",
             "%s/%s.tmpl" % (d, name), "--outfile", "%s/%s.crt" % (d, name))


def policy_text(lines):
    return "".join(json.dumps({"apiVersion": "abac.authorization.kubernetes.io/v1beta1",
                               "kind": "Policy", "spec": l}) + "\n" for l in lines)


def client_ctx(d, ca, name=None):
    ctx = ssl.create_default_context(cafile="%s/%s.crt" % (d, ca))
    if name:
        ctx.load_cert_chain("%s/%s.crt" % (d, name), "%s/%s.key" % (d, name))
    return ctx


def open_watch(c, path, token="root-token", ctx=None):
    conn = http.client.HTTPSConnection("127.0.0.1", c.port, context=ctx or c.ssl, timeout=10)
    conn.request("GET", path, headers={"Authorization": "Bearer " + token})
    return conn, conn.getresponse()


def read_events(resp, n):
    out = []
    while len(out) < n:
        line = resp.readline()
        if not line:
            break
        out.append(json.loads(line))
    return out


def raw_watch(c, ctx, path, token="root-token"):
    """The whole raw response of a watch that ends by itself, and whether the server closed
    its TLS session with close_notify (OpenSSL raises SSLEOFError on a bare end)."""
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                       % (path, token)).encode())
            out = b""
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        return out, True
                    out += b
            except ssl.SSLError:
                return out, False


def dechunk(raw):
    """The body of a chunked response, and whether its terminating chunk came."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    body = b""
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return body, rest == b"\r\n"
        body, rest = body + rest[:n], rest[n + 2:]
    return body, False


def peer_der(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


def streams_open(c):
    code, body = c.get("/metrics", "root-token")
    for line in body.decode().splitlines():
        if line.startswith("wcached_http_streams "):
            return int(line.split()[1])
    return -1


def gnutls_cli(port, ca, priority):
    r = subprocess.run(["gnutls-cli", "--x509cafile", ca, "--port", str(port), "--priority",
                        priority, "127.0.0.1"], input=b"", capture_output=True, timeout=20)
    return b"Handshake was completed" in r.stdout


def bad_flags(d):
    def run(*args):
        r = subprocess.run([WCACHED, "--listen", "127.0.0.1:0"] + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.returncode, r.stderr.strip().splitlines()
    srv = ["--tls-cert-file", d + "/server.crt", "--tls-private-key-file", d + "/server.key"]
    rc, err = run("--tls-cert-file", d + "/server.crt")
    check("a certificate without its key: exit 2 with one usage line",
          rc == 2 and "go together" in err[0], (rc, err))
    rc, err = run("--tls-cert-file", d + "/server.crt", "--tls-private-key-file",
                  d + "/missing.key")
    check("an unreadable key file: exit 2 naming it",
          rc == 2 and len(err) == 1 and "missing.key" in err[0], (rc, err))
    rc, err = run("--tls-cert-file", d + "/server.tmpl", "--tls-private-key-file",
                  d + "/server.key")
    check("a certificate file that is not PEM: exit 2, one line",
          rc == 2 and len(err) == 1 and "--tls-cert-file" in err[0], (rc, err))
    rc, err = run("--tls-cert-file", d + "/server.crt", "--tls-private-key-file",
                  d + "/alice.key")
    check("a key that is not the certificate's: exit 2, one line",
          rc == 2 and len(err) == 1 and "does not match" in err[0], (rc, err))
    rc, err = run(*srv, "--client-ca-file", d + "/server.key")
    check("a client CA file without a certificate: exit 2, one line",
          rc == 2 and len(err) == 1 and "--client-ca-file" in err[0], (rc, err))
    rc, err = run("--client-ca-file", d + "/ca.crt")
    check("--client-ca-file without HTTPS: exit 2", rc == 2 and "needs HTTPS" in err[0],
          (rc, err))


def main():
    d = tempfile.mkdtemp(prefix="wcached-tls-")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "ca", "wcached-first", usage="tls_www_server")
    make_cert(d, "alice", "ca", "alice", orgs=("dev",))
    make_cert(d, "bob", "ca", "bob", orgs=("dev", "ops"))
    make_cert(d, "mallory", "other-ca", "root", orgs=("admins",))
    make_cert(d, "server-only", "ca", "alice", usage="tls_www_server")
    open(d + "/tokens.csv", "w").write(TOKENS)
    open(d + "/policy.jsonl", "w").write(policy_text(POLICY))
    bad_flags(d)

    c = Cluster(tls_ca=d + "/ca.crt", args=[
        "--tls-cert-file", d + "/server.crt", "--tls-private-key-file", d + "/server.key",
        "--client-ca-file", d + "/ca.crt", "--token-auth-file", d + "/tokens.csv",
        "--authorization-policy-file", d + "/policy.jsonl", "--log-level", "debug"])
    clean_exit = None
    try:
        log = open(c.dir + "/wcached.log").read()
        check("the start line reads listening on https://HOST:PORT",
              "listening on https://127.0.0.1:%d" % c.port in log, log[-300:])
        for ns in ("default", "kube-system"):
            c.put("/registry/pods/%s/p-0" % ns, pod("p-0", ns, "node-1"))
        wait_until(lambda: b"kube-system" in c.get("/api/v1/pods", "root-token")[1])

        # Tokens over HTTPS.
        code, body = c.get("/api/v1/namespaces/default/pods", "alice-token")
        check("HTTPS list with a token", code == 200 and b'"p-0"' in body, (code, body[:200]))
        code, body = c.get("/api/v1/namespaces/default/pods/p-0", "alice-token")
        check("HTTPS get with a token", code == 200 and b'"PodList"' not in body, code)
        code, _ = c.get("/api/v1/namespaces/default/pods")
        check("HTTPS without credentials: 401", code == 401, code)
        code, _ = c.get("/healthz")
        check("/healthz over HTTPS without credentials", code == 200, code)

        # Client certificates: CN the user, O the groups, under the policy.
        alice, bob = client_ctx(d, "ca", "alice"), client_ctx(d, "ca", "bob")
        code, body = c.get("/api/v1/namespaces/default/pods", context=alice)
        check("alice's certificate lists pods in default", code == 200 and b"p-0" in body, code)
        code, body = c.get("/api/v1/namespaces/kube-system/pods", context=alice)
        check("alice's certificate in kube-system: 403 naming alice",
              code == 403 and b'User \\"alice\\"' in body, (code, body))
        code, _ = c.get("/metrics", context=alice)
        check("alice (O=dev) and /metrics: 403", code == 403, code)
        code, body = c.get("/metrics", context=bob)
        check("bob (O=dev, O=ops) reads /metrics by his group", code == 200, code)
        code, _ = c.get("/api/v1/namespaces/default/pods", context=client_ctx(d, "ca", "mallory"))
        check("a certificate from another CA: 401", code == 401, code)
        ctx = client_ctx(d, "ca", "mallory")
        code, _ = c.get("/api/v1/pods", "root-token", context=ctx)
        check("a certificate that is not valid: 401 even with a valid token", code == 401, code)
        code, _ = c.get("/api/v1/namespaces/default/pods",
                        context=client_ctx(d, "ca", "server-only"))
        check("a certificate not made for client authentication: 401", code == 401, code)
        r = subprocess.run(["kubectl", "--server", c.base, "--certificate-authority",
                            d + "/ca.crt", "--client-certificate", d + "/alice.crt",
                            "--client-key", d + "/alice.key", "get", "pods", "-n", "default",
                            "-o", "name"], capture_output=True, text=True, timeout=30)
        check("kubectl with alice's certificate gets pods in default",
              r.returncode == 0 and "pod/p-0" in r.stdout, (r.returncode, r.stderr[-300:]))

        # TLS versions.
        check("TLS 1.2 is served", gnutls_cli(c.port, d + "/ca.crt",
                                              "NORMAL:-VERS-ALL:+VERS-TLS1.2"))
        check("TLS 1.3 is served", gnutls_cli(c.port, d + "/ca.crt",
                                              "NORMAL:-VERS-ALL:+VERS-TLS1.3"))
        check("TLS 1.1 is refused", not gnutls_cli(c.port, d + "/ca.crt",
                                                   "NORMAL:-VERS-ALL:+VERS-TLS1.1"))

        # A watch over TLS: every event exactly once, in order, then a clean end.
        code, body = c.get("/api/v1/namespaces/default/pods", "root-token")
        rv = json.loads(body)["metadata"]["resourceVersion"]
        conn, resp = open_watch(c, "/api/v1/namespaces/default/pods?watch=1&resourceVersion=%s"
                                   % rv)
        check("a watch over TLS answers 200, chunked", resp.status == 200 and
              resp.getheader("Transfer-Encoding") == "chunked", resp.status)
        n = 200
        for i in range(n):
            c.put("/registry/pods/default/w-%03d" % i, pod("w-%03d" % i, "default", "node-1"))
        evs = read_events(resp, n)
        names = [e["object"]["metadata"]["name"] for e in evs]
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
        check("a watch over TLS delivers every event once, in order",
              names == ["w-%03d" % i for i in range(n)] and rvs == sorted(rvs) and
              all(e["type"] == "ADDED" for e in evs), names[:5])
        conn.close()
        conn, resp = open_watch(c, "/api/v1/namespaces/default/pods?watch=1&resourceVersion=%d"
                                   "&timeoutSeconds=1" % (rvs[-1] if rvs else 0))
        try:
            rest = resp.read()  # to the chunked body's end, at timeoutSeconds
            check("a stream ends cleanly at timeoutSeconds", rest == b"", rest[:200])
        except Exception as e:
            check("a stream ends cleanly at timeoutSeconds", False, repr(e))
        conn.close()

        # Each protocol and cipher the server offers: the pumps seal the records themselves.
        c.put("/registry/pods/default/big", pod("big", "default", "n" * 40000))
        code, body = c.get("/api/v1/namespaces/default/pods", "root-token")
        rv0 = json.loads(body)["metadata"]["resourceVersion"]
        variants = []
        for name, version, ciphers in (
                ("TLS 1.3", ssl.TLSVersion.TLSv1_3, None),
                ("TLS 1.2 AES-128-GCM", ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"),
                ("TLS 1.2 AES-256-GCM", ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384"),
                ("TLS 1.2 ChaCha20-Poly1305", ssl.TLSVersion.TLSv1_2,
                 "ECDHE-ECDSA-CHACHA20-POLY1305")):
            ctx = client_ctx(d, "ca")
            ctx.minimum_version = ctx.maximum_version = version
            if ciphers:
                ctx.set_ciphers(ciphers)
            raw, clean = raw_watch(c, ctx, "/api/v1/namespaces/default/pods?watch=1"
                                   "&resourceVersion=0&timeoutSeconds=1")
            body, ended = dechunk(raw)
            evs = [json.loads(l) for l in body.splitlines() if l]
            names = sorted(e["object"]["metadata"]["name"] for e in evs)
            big = [e for e in evs if e["object"]["metadata"]["name"] == "big"]
            check("a watch over %s: every object, a 40 KB one in several records, the chunked "
                  "end, then close_notify" % name,
                  raw.startswith(b"HTTP/1.1 200") and ended and clean and len(names) == n + 2
                  and big and big[0]["object"]["spec"]["nodeName"] == "n" * 40000,
                  (len(names), ended, clean, raw[:120]))
        r = subprocess.run(
            ["gnutls-cli", "--x509cafile", d + "/ca.crt", "--port", str(c.port), "--priority",
             "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305", "127.0.0.1"],
            input=("GET /api/v1/namespaces/default/pods?watch=1&resourceVersion=%s"
                   "&timeoutSeconds=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer root-token"
                   "\r\n\r\n" % rv0).encode(), capture_output=True, timeout=20)
        check("a watch over TLS 1.3 ChaCha20-Poly1305 (gnutls-cli) ends with close_notify",
              b"0\r\n\r\n" in r.stdout and b"closed the GnuTLS connection" in r.stderr + r.stdout,
              (r.stdout[-200:], r.stderr[-300:]))

        # A reader that leaves mid-stream: its stream ends, nothing is left open.
        watches = [open_watch(c, "/api/v1/pods?watch=1") for _ in range(3)]
        ok = wait_until(lambda: streams_open(c) == 3, 10)
        check("three TLS streams open", ok, streams_open(c))
        for _, r in watches:
            r.close()
        ok = wait_until(lambda: streams_open(c) == 0, 10)
        check("readers that leave mid-stream: their streams end", ok, streams_open(c))

        # SIGHUP swaps the certificate: new handshakes get it, an open stream goes on.
        conn, resp = open_watch(c, "/api/v1/namespaces/default/pods?watch=1&resourceVersion=0")
        read_events(resp, 1)
        old = peer_der(c.port, c.ssl)
        make_cert(d, "server-new", "ca", "wcached-second", usage="tls_www_server",
                  key=d + "/server.key")
        os.replace(d + "/server-new.crt", d + "/server.crt")
        c.wcached.send_signal(signal.SIGHUP)
        new = ssl.PEM_cert_to_DER_cert(open(d + "/server.crt").read())
        ok = wait_until(lambda: peer_der(c.port, c.ssl) == new, 10)
        check("after SIGHUP a new handshake sees the new certificate", ok and old != new)
        c.put("/registry/pods/default/after-swap", pod("after-swap", "default", "node-1"))
        got = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ev = read_events(resp, 1)
            if not ev:
                break
            got.append(ev[0]["object"]["metadata"]["name"])
            if got[-1] == "after-swap":
                break
        check("a stream opened before the swap keeps receiving", "after-swap" in got, got[-3:])
        code, _ = c.get("/api/v1/namespaces/default/pods", context=alice)
        check("client certificates still verify after SIGHUP", code == 200, code)
        # A bad certificate on SIGHUP leaves the one in force.
        open(d + "/server.crt", "w").write("not a certificate\n")
        c.wcached.send_signal(signal.SIGHUP)
        wait_until(lambda: "previous ones stay in force" in open(c.dir + "/wcached.log").read())
        check("a bad certificate on SIGHUP leaves the previous one in force",
              peer_der(c.port, c.ssl) == new)
        conn.close()
        # Stopping with a TLS stream open: it ends cleanly, and wcached exits 0.
        conn, resp = open_watch(c, "/api/v1/namespaces/default/pods?watch=1&resourceVersion=0")
        read_events(resp, 1)
    finally:
        clean_exit = c.close()
    try:
        rest = resp.read()
        check("a TLS stream open at SIGTERM gets its body's end", True)
    except Exception as e:
        check("a TLS stream open at SIGTERM gets its body's end", False, repr(e))
    check("wcached exits 0 after the drain (no sanitizer report)", clean_exit == 0, clean_exit)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
