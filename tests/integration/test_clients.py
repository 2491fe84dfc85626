#!/usr/bin/python3
"""Real Kubernetes clients against a live wcached over a real etcd: kubectl (get in several
output formats, short names, categories, pages, watches, api-resources) and Debian's
python3-kubernetes (a list, a watch from its resourceVersion with bookmarks, and a relist when
the watch answers 410). Prints one line per check and "N passed, N failed"; exits 1 on any
failure."""

import json
import subprocess
import sys
import threading

from cluster import Cluster, check, pod, results, wait_until


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
    r = c.kubectl("get", "pods", "-A", "--field-selector", "status.phase=Running", "-o", "name")
    check("kubectl get pods --field-selector status.phase=Running (a pod's own field label)",
          r.returncode == 0 and len(r.stdout.split()) == 4, r.stdout + r.stderr)
    r = c.kubectl("describe", "pod", "web-1", "-n", "default")
    check("kubectl describe pod (it lists the pod's events by involvedObject.*)",
          r.returncode == 0 and "web-1" in r.stdout and "node-1" in r.stdout,
          r.stdout[-500:] + r.stderr)
    r = c.kubectl("version")
    check("kubectl version names the server", r.returncode == 0 and
          "Server Version: v1." in r.stdout and "+wcached-" in r.stdout, r.stdout + r.stderr)
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
