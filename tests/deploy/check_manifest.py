#!/usr/bin/env python3
"""Checks one Kubernetes manifest of deploy/kubernetes, given as the JSON `kubectl create
--dry-run=client -o json` makes of it, against what wcached accepts and how its pieces meet.

    check_manifest.py MANIFEST.json HELP.txt ENVDIR

- Every WCACHED_* variable a wcached container gets (env, or a ConfigMap of the same file by
  envFrom) names an option of `wcached --help` (HELP.txt).
- Each wcached container's environment is written to ENVDIR/<kind>-<name>.env (KEY=VALUE
  lines), for the caller to start wcached with it.
- An endpoint in WCACHED_ETCD_ENDPOINTS that names a Service of the same file (a tier reading
  another) reaches a wcached: the Service selects the pods of a workload in the file, its
  targetPort is one of their container's ports, that port is the one their WCACHED_LISTEN
  binds, and the reading tier's WCACHED_ETCD_PREFIX lies within the read one's.

Prints one line per finding; exits 1 when anything is wrong.
"""
import json
import os
import re
import sys
from urllib.parse import urlparse

WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")


def objects(text):
    """The objects of kubectl's output: one JSON document after another, or a List."""
    dec, pos, out = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return out
        doc, pos = dec.raw_decode(text, pos)
        out.extend(doc.get("items", []) if doc.get("kind") == "List" else [doc])


def main():
    manifest, help_file, envdir = sys.argv[1:4]
    with open(manifest) as f:
        objs = objects(f.read())
    with open(help_file) as f:
        options = set(re.findall(r"--([a-z][a-z0-9-]*)", f.read()))
    errors = []
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
    services = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    # each workload's wcached container: its environment and ports
    tiers = {}
    for o in objs:
        if o["kind"] not in WORKLOADS:
            continue
        pod = o["spec"]["template"]
        for c in pod["spec"]["containers"]:
            if not c.get("image", "").split("/")[-1].startswith("wcached"):
                continue
            env = {}
            for src in c.get("envFrom", []):
                ref = src.get("configMapRef", {}).get("name")
                if ref not in maps:
                    errors.append(f"{o['kind']} {o['metadata']['name']}: envFrom names ConfigMap "
                                  f"'{ref}', not in this file")
                    continue
                env.update(maps[ref])
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
            for k in env:
                if not k.startswith("WCACHED_"):
                    continue
                opt = k[len("WCACHED_"):].lower().replace("_", "-")
                if opt not in options:
                    errors.append(f"{o['kind']} {o['metadata']['name']}: {k} names no option "
                                  f"of wcached (--{opt})")
            key = f"{o['kind']}-{o['metadata']['name']}"
            with open(os.path.join(envdir, key + ".env"), "w") as f:
                for k, v in sorted(env.items()):
                    if k.startswith("WCACHED_"):
                        f.write(f"{k}={v}\n")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            tiers[key] = {"labels": pod["metadata"].get("labels", {}), "env": env, "ports": ports}

    for key, t in tiers.items():
        for url in filter(None, t["env"].get("WCACHED_ETCD_ENDPOINTS", "").split(",")):
            u = urlparse(url)
            svc = services.get(u.hostname.split(".")[0]) if u.hostname else None
            if svc is None:
                continue  # etcd, or something outside this file
            port = u.port or (443 if u.scheme == "https" else 80)
            sp = [p for p in svc["spec"].get("ports", []) if p["port"] == port]
            if not sp:
                errors.append(f"{key}: {url}: Service {svc['metadata']['name']} has no port {port}")
                continue
            sel = svc["spec"].get("selector", {})
            up = [k for k, o in tiers.items()
                  if sel and all(o["labels"].get(a) == b for a, b in sel.items())]
            if not up:
                errors.append(f"{key}: {url}: Service {svc['metadata']['name']} selects no "
                              "wcached of this file")
                continue
            for k in up:
                o = tiers[k]
                if k == key:
                    errors.append(f"{key}: {url} is its own Service")
                    continue
                target = sp[0].get("targetPort", port)
                cport = o["ports"].get(target) if isinstance(target, str) else target
                if cport is None or cport not in o["ports"].values():
                    errors.append(f"{key}: {url}: targetPort {target} is no port of {k}")
                    continue
                listen = o["env"].get("WCACHED_LISTEN", "127.0.0.1:8080")
                if not listen.endswith(f":{cport}") or listen.startswith("127."):
                    errors.append(f"{key}: {url}: {k} listens on {listen}, not on port {cport} "
                                  "of its pod's address")
                prefix = t["env"].get("WCACHED_ETCD_PREFIX", "")
                upper = o["env"].get("WCACHED_ETCD_PREFIX", "")
                if not prefix.startswith(upper):
                    errors.append(f"{key}: prefix '{prefix}' is not within {k}'s '{upper}'")
                if not errors:
                    print(f"tier: {key} reads {k} through Service {svc['metadata']['name']}")
    for e in errors:
        print("error: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
