"""A throw-away etcd member and a wcached in front of it, on free loopback ports, for the
Python integration tests; and their one way of reporting checks."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

WCACHED = os.environ["WCACHED_BIN"]
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok: " if ok else "FAIL: ") + name + ("" if ok else ": " + str(detail)[:800]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def pod(name, ns, node):
    return json.dumps({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"},
                     "creationTimestamp": "2026-12-01T00:00:00Z", "uid": name + "-uid"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "example/c:1"}]},
        "status": {"phase": "Running"},
    })


class Cluster:
    """One etcd member and one wcached in front of it, both on free loopback ports."""

    def __init__(self, ring_size=1000, args=(), tls_ca=None):
        """tls_ca: wcached serves HTTPS (its args carry the certificate) and this CA signed it."""
        self.dir = tempfile.mkdtemp(prefix="wcached-clients-")
        self.etcd_url = "http://127.0.0.1:%d" % free_port()
        peer = "http://127.0.0.1:%d" % free_port()
        self.etcd = subprocess.Popen(
            ["etcd", "--name", "c", "--data-dir", self.dir + "/data",
             "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "c=" + peer, "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir + "/etcd.log", "w"))
        if not wait_until(lambda: self.ctl("endpoint", "health").returncode == 0):
            raise RuntimeError("etcd did not start")
        self.port = free_port()
        self.ssl = None
        if tls_ca:
            import ssl
            self.ssl = ssl.create_default_context(cafile=tls_ca)
        self.base = "%s://127.0.0.1:%d" % ("https" if tls_ca else "http", self.port)
        self.wcached = subprocess.Popen(
            [WCACHED, "--listen", "127.0.0.1:%d" % self.port, "--etcd-endpoints", self.etcd_url,
             "--ring-size", str(ring_size), "--index-field", "spec.nodeName"] + list(args),
            stdout=subprocess.DEVNULL, stderr=open(self.dir + "/wcached.log", "w"))
        if not wait_until(lambda: self.get("/readyz")[0] == 200):
            raise RuntimeError("wcached did not get ready")

    def ctl(self, *args, value=None):
        env = dict(os.environ, ETCDCTL_API="3")
        argv = ["etcdctl", "--endpoints", self.etcd_url, "--dial-timeout=1s",
                "--command-timeout=3s"] + list(args)
        if value is not None:
            argv.append(value)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)

    def put(self, key, value):
        r = self.ctl("put", key, value=value)
        assert r.returncode == 0, r.stderr

    def get(self, path, token=None, context=None):
        """context: an ssl.SSLContext in place of the cluster's (a client certificate)."""
        import urllib.request
        req = urllib.request.Request(self.base + path)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=5, context=context or self.ssl) as r:
                return r.status, r.read()
        except Exception as e:  # HTTPError carries the code and body; others: not up yet
            body = e.read() if hasattr(e, "read") else b""
            return getattr(e, "code", 0), body

    def kubectl(self, *args, timeout=20):
        return subprocess.run(["kubectl", "--server", self.base] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def close(self):
        """Stops both; returns wcached's exit status (0 after a clean drain; a sanitizer's
        report makes it another)."""
        codes = []
        for p in (self.wcached, self.etcd):
            p.terminate()
            try:
                codes.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(-9)
        shutil.rmtree(self.dir, ignore_errors=True)
        return codes[0]


