#!/usr/bin/python3
"""Real Kubernetes clients against a live wcached over a real etcd: kubectl (get in several
output formats, short names, categories, pages, watches, api-resources) and Debian's
python3-kubernetes (a list, a watch from its resourceVersion with bookmarks, and a relist when
the watch answers 410). Prints one line per check and "N passed, N failed"; exits 1 on any
failure."""

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request

from cluster import Cluster, check, pod, results, wait_until

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def ago(seconds):
    """An RFC 3339 time `seconds` before now."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds))


def rich_pods():
    """web-1: two ready containers, one restarted three times (the last 120 minutes ago), an IP,
    created three hours ago; web-3: a container in CrashLoopBackOff after five restarts."""
    web1 = json.loads(pod("web-1", "default", "node-1"))
    web1["metadata"]["creationTimestamp"] = ago(3 * 3600)
    web1["spec"]["containers"].append({"name": "side", "image": "example/side:1"})
    web1["status"].update({
        "podIP": "10.0.0.11", "podIPs": [{"ip": "10.0.0.11"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "c", "image": "example/c:1", "imageID": "", "ready": True,
             "restartCount": 3, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(2 * 3600)}}},
            {"name": "side", "image": "example/side:1", "imageID": "", "ready": True,
             "restartCount": 0, "state": {"running": {}}}]})
    web3 = json.loads(pod("web-3", "default", "node-1"))
    web3["status"]["containerStatuses"] = [
        {"name": "c", "image": "example/c:1", "imageID": "", "ready": False, "restartCount": 5,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
    return json.dumps(web1), json.dumps(web3)


def columns(out):
    """kubectl's table output as lists of cells (split at runs of two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.strip()]


def row_of(rows, first):
    return next((r for r in rows if r and r[0] == first), None)


def get_table(c, path):
    req = urllib.request.Request(c.base + path, headers={"Accept": TABLE})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), json.loads(e.read())


def table_checks(c):
    """Server-side printing: the apiserver's columns and cells for what kubectl shows."""
    r = c.kubectl("get", "pods", "-n", "default", "-o", "wide")
    rows = columns(r.stdout)
    check("kubectl get pods -o wide: the apiserver's columns",
          r.returncode == 0 and rows and rows[0] == [
              "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
              "READINESS GATES"], r.stdout + r.stderr)
    check("kubectl get pods -o wide: web-1's READY STATUS RESTARTS AGE IP NODE",
          row_of(rows, "web-1") == ["web-1", "2/2", "Running", "3 (120m ago)", "3h", "10.0.0.11",
                                    "node-1", "<none>", "<none>"], r.stdout)
    check("kubectl get pods -o wide: web-3 in CrashLoopBackOff",
          (row_of(rows, "web-3") or [])[:4] == ["web-3", "0/1", "CrashLoopBackOff", "5"],
          r.stdout)
    check("kubectl get pods -o wide: web-2 with no status shows <none> for its IP",
          (row_of(rows, "web-2") or [None] * 7)[5:7] == ["<none>", "node-2"], r.stdout)
    r = c.kubectl("get", "cm", "-n", "default")
    rows = columns(r.stdout)
    check("kubectl get cm: NAME DATA AGE",
          r.returncode == 0 and rows[0] == ["NAME", "DATA", "AGE"] and
          (row_of(rows, "settings") or [None] * 3)[1] == "3", r.stdout + r.stderr)
    r = c.kubectl("get", "svc", "-n", "default", "-o", "wide")
    rows = columns(r.stdout)
    check("kubectl get svc -o wide: TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR",
          r.returncode == 0 and rows[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                                            "PORT(S)", "AGE", "SELECTOR"] and
          row_of(rows, "web") == ["web", "ClusterIP", "10.96.0.10", "<none>",
                                  "80/TCP,443/TCP", "15m", "app=web"], r.stdout + r.stderr)
    r = c.kubectl("get", "all", "-n", "default")
    rows = columns(r.stdout)
    check("kubectl get all: pods and services each with their own columns",
          r.returncode == 0 and (row_of(rows, "pod/web-1") or [None] * 3)[1:3] ==
          ["2/2", "Running"] and (row_of(rows, "service/web") or [None] * 2)[1] == "ClusterIP",
          r.stdout + r.stderr)
    r = c.kubectl("get", "events", "-n", "default")
    rows = columns(r.stdout)
    check("kubectl get events: LAST SEEN TYPE REASON OBJECT MESSAGE",
          r.returncode == 0 and rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
          and (row_of(rows, "10m") or [])[1:] == ["Normal", "Started", "pod/web-1",
                                                  "Started container c"], r.stdout + r.stderr)
    r = c.kubectl("get", "pods", "-A", "--chunk-size=1")
    rows = columns(r.stdout)
    check("kubectl get pods --chunk-size=1 with Table pages: one header, every pod",
          r.returncode == 0 and sum(1 for x in rows if x[0] == "NAMESPACE") == 1 and
          sorted(x[1] for x in rows[1:]) == ["dns-1", "web-1", "web-2", "web-3"],
          r.stdout + r.stderr)

    code, ctype, t = get_table(c, "/api/v1/namespaces/default/pods/web-1")
    check("a get with Accept Table answers a Table of one row with PartialObjectMetadata",
          code == 200 and ctype == TABLE and t["kind"] == "Table" and
          t["apiVersion"] == "meta.k8s.io/v1" and t["metadata"]["resourceVersion"] and
          [d["name"] for d in t["columnDefinitions"]][:5] ==
          ["Name", "Ready", "Status", "Restarts", "Age"] and
          t["columnDefinitions"][5]["priority"] == 1 and
          t["rows"][0]["object"]["kind"] == "PartialObjectMetadata" and
          t["rows"][0]["object"]["metadata"]["name"] == "web-1" and
          "spec" not in t["rows"][0]["object"], (code, ctype, t))
    _, _, t = get_table(c, "/api/v1/namespaces/default/pods?includeObject=Object&limit=1")
    check("includeObject=Object carries the whole object; limit gives a continue token",
          t["rows"][0]["object"]["kind"] == "Pod" and "spec" in t["rows"][0]["object"] and
          t["metadata"].get("continue"), t)
    _, _, t = get_table(c, "/api/v1/namespaces/default/pods?includeObject=None")
    check("includeObject=None leaves the objects out",
          all(row["object"] is None for row in t["rows"]) and len(t["rows"]) == 3, t)
    code, _, t = get_table(c, "/api/v1/namespaces/default/pods?includeObject=All")
    check("an unknown includeObject answers 400", code == 400 and t["kind"] == "Status", t)
    status, body = c.get("/api/v1/namespaces/default/pods")
    check("without Accept Table a list is the usual PodList",
          status == 200 and json.loads(body)["kind"] == "PodList", body[:200])
    req = urllib.request.Request(
        c.base + "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1",
        headers={"Accept": TABLE})
    with urllib.request.urlopen(req, timeout=10) as resp:
        events = [json.loads(x) for x in resp.read().splitlines() if x.strip()]
    check("a Table watch: each object a Table of one row, the first with the columns",
          [e["type"] for e in events] == ["ADDED"] * 3 and
          all(e["object"]["kind"] == "Table" and len(e["object"]["rows"]) == 1 for e in events)
          and len(events[0]["object"]["columnDefinitions"]) == 9 and
          all(e["object"]["columnDefinitions"] == [] for e in events[1:]), events)


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
    # kubectl get -w with its Table: the list's rows, then the row of a change.
    w = subprocess.Popen(["kubectl", "--server", c.base, "get", "pods", "-n", "default", "-w",
                          "--request-timeout=10s"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    table_seen = []
    reader = threading.Thread(target=lambda: [table_seen.append(l) for l in w.stdout])
    reader.start()
    wait_until(lambda: len(table_seen) >= 4, 10)
    web1 = json.loads(rich_pods()[0])
    web1["status"]["containerStatuses"][1]["ready"] = False
    c.put("/registry/pods/default/web-1", json.dumps(web1))
    wait_until(lambda: any(re.split(r"\s{2,}", l.strip())[:2] == ["web-1", "1/2"]
                           for l in table_seen), 10)
    w.terminate()
    reader.join(10)
    check("kubectl get pods -w (Table) shows the changed row",
          any(re.split(r"\s{2,}", l.strip())[:3] == ["web-1", "1/2", "Running"]
              for l in table_seen), table_seen)
    c.put("/registry/pods/default/web-1", rich_pods()[0])
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
        web1, web3 = rich_pods()
        c.put("/registry/pods/default/web-1", web1)
        c.put("/registry/pods/default/web-3", web3)
        c.put("/registry/configmaps/default/settings", json.dumps({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "settings", "namespace": "default",
                         "creationTimestamp": ago(60)},
            "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}))
        c.put("/registry/services/specs/default/web", json.dumps({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(900)},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP"},
                               {"port": 443, "protocol": "TCP"}]}}))
        c.put("/registry/events/default/web-1.1", json.dumps({
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": "web-1.1", "namespace": "default", "creationTimestamp": ago(600)},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            "reason": "Started", "message": "Started container c", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ago(600), "lastTimestamp": ago(600), "count": 1}))
        wait_until(lambda: b"web-1.1" in c.get("/api/v1/events")[1])
        table_checks(c)
        kubectl_checks(c)
        python_client_checks(c)
    finally:
        c.close()
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
