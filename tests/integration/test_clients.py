#!/usr/bin/python3
"""Real Kubernetes clients against a live wcached over a real etcd: kubectl (get in several
output formats, short names, categories, pages, watches, api-resources) and Debian's
python3-kubernetes (a list, a watch from its resourceVersion with bookmarks, and a relist when
the watch answers 410). Prints one line per check and "N passed, N failed"; exits 1 on any
failure."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
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

    def __init__(self, ring_size):
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
        self.base = "http://127.0.0.1:%d" % self.port
        self.wcached = subprocess.Popen(
            [WCACHED, "--listen", "127.0.0.1:%d" % self.port, "--etcd-endpoints", self.etcd_url,
             "--ring-size", str(ring_size), "--index-field", "spec.nodeName"],
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

    def get(self, path):
        import urllib.request
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, r.read()
        except Exception as e:  # HTTPError carries the code; others mean not up yet
            return getattr(e, "code", 0), b""

    def kubectl(self, *args, timeout=20):
        return subprocess.run(["kubectl", "--server", self.base] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def close(self):
        for p in (self.wcached, self.etcd):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def kubectl_checks(c):
    r = c.kubectl("get", "pods", "-A")
    check("kubectl get pods -A", r.returncode == 0 and "web-1" in r.stdout and "dns-1" in r.stdout,
          r.stdout + r.stderr)
    r = c.kubectl("get", "po", "-n", "default", "-o", "name")
    names = sorted(r.stdout.split())
    check("kubectl get po -o name (a short name)",
          r.returncode == 0 and names == ["pod/web-1", "pod/web-2", "pod/web-3"], r.stdout + r.stderr)
    r = c.kubectl("get", "pods", "-n", "default", "-o", "json")
    try:
        items = json.loads(r.stdout)["items"]
        ok = [i["metadata"]["name"] for i in items] == ["web-1", "web-2", "web-3"] and all(
            i["metadata"]["resourceVersion"] for i in items)
    except Exception as e:
        ok, r.stderr = False, str(e) + r.stderr
    check("kubectl get pods -o json", r.returncode == 0 and ok, r.stdout[:300] + r.stderr)
    r = c.kubectl("get", "pod", "web-2", "-n", "default", "-o", "jsonpath={.spec.nodeName}")
    check("kubectl get pod web-2 -o jsonpath", r.returncode == 0 and r.stdout == "node-2",
          r.stdout + r.stderr)
    r = c.kubectl("get", "pods", "-A", "-o", "yaml")
    check("kubectl get pods -o yaml", r.returncode == 0 and "name: dns-1" in r.stdout, r.stderr)
    r = c.kubectl("get", "all", "-A")
    check("kubectl get all (the 'all' category)",
          r.returncode == 0 and "web-1" in r.stdout and "dns-1" in r.stdout, r.stdout + r.stderr)
    r = c.kubectl("get", "pods", "-A", "--chunk-size=1", "-o", "name")
    check("kubectl get pods --chunk-size=1 (pages of one)",
          r.returncode == 0 and len(r.stdout.split()) == 4, r.stdout + r.stderr)
    r = c.kubectl("get", "pods", "-n", "default", "-l", "app=web", "--field-selector",
                  "spec.nodeName=node-1", "-o", "name")
    check("kubectl get pods -l ... --field-selector spec.nodeName=...",
          r.returncode == 0 and sorted(r.stdout.split()) == ["pod/web-1", "pod/web-3"],
          r.stdout + r.stderr)
    r = c.kubectl("api-resources")
    check("kubectl api-resources", r.returncode == 0 and " po " in r.stdout and
          "deployments" in r.stdout, r.stdout[:300] + r.stderr)
    r = c.kubectl("get", "--raw", "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1")
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    check("kubectl get --raw ...?watch=1 (the state as ADDED, then the end)",
          r.returncode == 0 and [x["type"] for x in lines] == ["ADDED"] * 3, r.stdout + r.stderr)
    # kubectl get -w: the list, then a change made while it watches.
    w = subprocess.Popen(["kubectl", "--server", c.base, "get", "pods", "-n", "default", "-w",
                          "-o", "name", "--request-timeout=10s"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    reader = threading.Thread(target=lambda: [seen.append(l.strip()) for l in w.stdout])
    reader.start()
    wait_until(lambda: len(seen) >= 3, 10)
    c.put("/registry/pods/default/web-4", pod("web-4", "default", "node-2"))
    wait_until(lambda: "pod/web-4" in seen, 10)
    w.terminate()
    reader.join(10)
    check("kubectl get pods -w sees a change made while it watches", "pod/web-4" in seen, seen)


def python_client_checks(c):
    from kubernetes import client, watch
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.client.exceptions import ApiException

    cfg = Configuration()
    cfg.host = c.base
    api = client.CoreV1Api(ApiClient(cfg))
    pods = api.list_namespaced_pod("default")
    rv = pods.metadata.resource_version
    check("python: list", sorted(p.metadata.name for p in pods.items) ==
          ["web-1", "web-2", "web-3", "web-4"], [p.metadata.name for p in pods.items])
    threading.Timer(1.0, lambda: c.put("/registry/pods/default/web-5",
                                       pod("web-5", "default", "node-1"))).start()
    events = []
    for ev in watch.Watch().stream(api.list_namespaced_pod, "default", resource_version=rv,
                                   allow_watch_bookmarks=True, timeout_seconds=3):
        events.append((ev["type"], ev["object"].metadata.name if ev["type"] != "BOOKMARK" else ""))
        if ev["type"] == "ADDED":
            got_rv = ev["object"].metadata.resource_version
    check("python: watch from the list's resourceVersion gets the change, and only it",
          [e for e in events if e[0] != "BOOKMARK"] == [("ADDED", "web-5")], events)
    # Push the list's revision out of the ring (the cluster's ring holds 8 events), then watch
    # from it: 410, and the client relists.
    for i in range(12):
        c.put("/registry/pods/default/web-1", pod("web-1", "default", "node-%d" % (i % 2 + 1)))
    try:
        for _ in watch.Watch().stream(api.list_namespaced_pod, "default", resource_version=rv,
                                      timeout_seconds=2):
            pass
        check("python: a watch from a revision out of the ring answers 410", False, "no error")
    except ApiException as e:
        check("python: a watch from a revision out of the ring answers 410", e.status == 410,
              e)
    again = api.list_namespaced_pod("default")
    check("python: the relist after the 410 is current",
          int(again.metadata.resource_version) > int(got_rv) and
          sorted(p.metadata.name for p in again.items) ==
          ["web-1", "web-2", "web-3", "web-4", "web-5"],
          (again.metadata.resource_version, [p.metadata.name for p in again.items]))


def main():
    c = Cluster(ring_size=8)
    try:
        for i in (1, 2, 3):
            c.put("/registry/pods/default/web-%d" % i, pod("web-%d" % i, "default",
                                                         "node-%d" % ((i - 1) % 2 + 1)))
        c.put("/registry/pods/kube-system/dns-1", pod("dns-1", "kube-system", "node-1"))
        wait_until(lambda: b"dns-1" in c.get("/api/v1/pods")[1])
        kubectl_checks(c)
        python_client_checks(c)
    finally:
        c.close()
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
