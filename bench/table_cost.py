#!/usr/bin/python3
"""What a server-side Table costs: one list of N pods as JSON and as a Table, best of 10 each.

    WCACHED_BIN=build/release/daemon/wcached bench/table_cost.py [N]

Starts a throw-away etcd and wcached (tests/integration/cluster.py), puts N pods of about 750
bytes with container statuses, and prints each answer's time and size."""

import base64
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import cluster  # noqa: E402
import test_clients  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    c = cluster.Cluster()
    try:
        pod = json.loads(test_clients.rich_pods()[0])
        for i in range(n):
            pod["metadata"]["name"] = "p-%05d" % i
            key = b"/registry/pods/default/p-%05d" % i
            body = json.dumps({"key": base64.b64encode(key).decode(),
                               "value": base64.b64encode(json.dumps(pod).encode()).decode()})
            urllib.request.urlopen(urllib.request.Request(c.etcd_url + "/v3/kv/put",
                                                          data=body.encode())).read()
        last = "/api/v1/namespaces/default/pods/p-%05d" % (n - 1)
        if not cluster.wait_until(lambda: c.get(last)[0] == 200):
            raise RuntimeError("the pods did not reach the cache")
        for what, accept in (("JSON", None), ("Table", test_clients.TABLE)):
            best, size = 1e9, 0
            for _ in range(10):
                req = urllib.request.Request(c.base + "/api/v1/namespaces/default/pods",
                                             headers={"Accept": accept} if accept else {})
                t0 = time.monotonic()
                size = len(urllib.request.urlopen(req).read())
                best = min(best, time.monotonic() - t0)
            print("%-5s list of %d pods: %.1f ms (best of 10), %d bytes" %
                  (what, n, best * 1000, size))
    finally:
        c.close()


if __name__ == "__main__":
    main()
