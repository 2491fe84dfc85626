#!/usr/bin/python3
"""Who may read what, against a live wcached over a real etcd: bearer tokens
(--token-auth-file), the ABAC policy (--authorization-policy-file), the 401 and 403 Status
answers, /healthz and /readyz open to all, a client library with a token, a SIGHUP that reads
the files again, and no token in the log. Prints one line per check and "N passed, N failed"."""

import json
import os
import signal
import sys
import tempfile

from cluster import Cluster, check, pod, results, wait_until

TOKENS = """alice-token,alice,1
bob-token,bob,2,"ops,dev"
root-token,root,3,admins
"""
POLICY = [
    {"user": "alice", "namespace": "default", "resource": "pods", "apiGroup": "*",
     "readonly": True},
    {"group": "ops", "nonResourcePath": "/metrics", "readonly": True},
    {"group": "ops", "nonResourcePath": "/keys/demo/*", "readonly": True},
    {"group": "admins", "namespace": "*", "resource": "*", "apiGroup": "*",
     "nonResourcePath": "*", "readonly": True},
]


def policy_text(lines):
    return "".join(json.dumps({"apiVersion": "abac.authorization.kubernetes.io/v1beta1",
                               "kind": "Policy", "spec": l}) + "\n" for l in lines)


def status(body):
    try:
        return json.loads(body)
    except Exception:
        return {}


def main():
    d = tempfile.mkdtemp(prefix="wcached-auth-")
    tokens, policy = d + "/tokens.csv", d + "/policy.jsonl"
    open(tokens, "w").write(TOKENS)
    open(policy, "w").write(policy_text(POLICY))
    c = Cluster(args=["--token-auth-file", tokens, "--authorization-policy-file", policy])
    try:
        for ns in ("default", "kube-system"):
            c.put("/registry/pods/%s/p-1" % ns, pod("p-1", ns, "node-1"))
        c.put("/demo/greeting", "hello")
        c.put("/secret/key", "s3cr3t")
        wait_until(lambda: b"kube-system" in c.get("/api/v1/pods", "root-token")[1])

        for path in ("/healthz", "/readyz"):
            code, _ = c.get(path)
            check("%s is open without credentials" % path, code == 200, code)
        code, body = c.get("/api/v1/namespaces/default/pods")
        st = status(body)
        check("no credentials: 401 Status Unauthorized",
              code == 401 and st.get("reason") == "Unauthorized" and
              st.get("message") == "Unauthorized", (code, body))
        code, _ = c.get("/api/v1/namespaces/default/pods", "not-a-token")
        check("a token that is not valid: 401", code == 401, code)

        code, body = c.get("/api/v1/namespaces/default/pods", "alice-token")
        check("alice lists pods in default", code == 200 and b"p-1" in body, (code, body[:200]))
        code, body = c.get("/api/v1/namespaces/default/pods/p-1", "alice-token")
        check("alice gets a pod in default", code == 200, code)
        code, body = c.get("/api/v1/namespaces/kube-system/pods", "alice-token")
        st = status(body)
        check("alice in kube-system: 403 with the apiserver's message",
              code == 403 and st.get("reason") == "Forbidden" and
              st.get("message", "").startswith(
                  'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
                  'in the namespace "kube-system"'), (code, body))
        code, body = c.get("/api/v1/pods", "alice-token")
        check("alice across all namespaces: 403 (allowed in one only)",
              code == 403 and b"at the cluster scope" in body, (code, body))
        code, body = c.get("/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1",
                           "alice-token")
        check("alice watches pods in default", code == 200 and b'"ADDED"' in body, code)
        code, body = c.get("/api/v1/namespaces/default/configmaps", "alice-token")
        check("alice and another resource: 403", code == 403, code)
        for path in ("/keys/demo/greeting", "/metrics"):
            code, body = c.get(path, "alice-token")
            check("alice and the non-resource path %s: 403" % path,
                  code == 403 and b'cannot get path' in body, (code, body))

        code, body = c.get("/metrics", "bob-token")
        check("bob (group ops) reads /metrics", code == 200 and b"wcached_" in body, code)
        code, body = c.get("/keys/demo/greeting", "bob-token")
        check("bob reads /keys/demo/ by a path prefix", code == 200 and b"hello" in body, code)
        code, _ = c.get("/keys/secret/key", "bob-token")
        check("bob outside /keys/demo/: 403", code == 403, code)
        code, _ = c.get("/api/v1/namespaces/default/pods", "bob-token")
        check("bob and pods: 403", code == 403, code)

        code, body = c.get("/api/v1/pods", "root-token")
        check("root (group admins) lists every namespace", code == 200 and
              b"kube-system" in body and b"default" in body, code)
        code, _ = c.get("/keys/secret/key", "root-token")
        check("root reads any path", code == 200, code)

        # A client library with a token (kubectl sends no token over plain http:// at all).
        from kubernetes import client
        from kubernetes.client import ApiClient, Configuration
        from kubernetes.client.exceptions import ApiException
        cfg = Configuration()
        cfg.host = c.base
        cfg.api_key = {"authorization": "Bearer alice-token"}
        api = client.CoreV1Api(ApiClient(cfg))
        names = [p.metadata.name for p in api.list_namespaced_pod("default").items]
        check("python client with alice's token lists default", names == ["p-1"], names)
        try:
            api.list_pod_for_all_namespaces()
            check("python client with alice's token: all namespaces forbidden", False, "allowed")
        except ApiException as e:
            check("python client with alice's token: all namespaces forbidden", e.status == 403,
                  e)

        # SIGHUP reads both files again: carol appears, alice loses default.
        open(tokens, "w").write(TOKENS + "carol-token,carol,4\n")
        open(policy, "w").write(policy_text(POLICY[1:] + [
            {"user": "carol", "namespace": "kube-system", "resource": "pods", "apiGroup": "*",
             "readonly": True}]))
        c.wcached.send_signal(signal.SIGHUP)
        ok = wait_until(lambda: c.get("/api/v1/namespaces/kube-system/pods",
                                      "carol-token")[0] == 200, 10)
        check("after SIGHUP a new token and policy line are in force", ok)
        code, _ = c.get("/api/v1/namespaces/default/pods", "alice-token")
        check("after SIGHUP a removed policy line is gone", code == 403, code)
        # A file that does not parse leaves the previous ones in force.
        open(policy, "w").write("{not json\n")
        c.wcached.send_signal(signal.SIGHUP)
        wait_until(lambda: "previous ones stay in force" in open(c.dir + "/wcached.log").read(),
                   10)
        code, _ = c.get("/api/v1/namespaces/kube-system/pods", "carol-token")
        check("a policy that does not parse on SIGHUP leaves the previous one", code == 200, code)

        log = open(c.dir + "/wcached.log").read()
        check("refusals are logged with user, verb and path",
              'GET /api/v1/namespaces/kube-system/pods by "alice"' in log, log[-500:])
        check("no token ever reaches the log",
              not any(t in log for t in ("alice-token", "bob-token", "root-token",
                                         "carol-token", "not-a-token")), "a token is logged")
    finally:
        c.close()
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
