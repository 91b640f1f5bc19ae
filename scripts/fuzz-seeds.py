#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into fuzz/corpus/TARGET/
(not committed): the YAML of testdata/ and ../shared/corpus for the loader
and the fix emitter, the policy files of rules/ and testdata/ for the
policy reader, and AdmissionReviews built from testdata's objects for the
admission handler. Seeds larger than the fuzzers' -max_len are left out.

    python3 scripts/fuzz-seeds.py
"""
import hashlib
import json
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MAX_LEN = 65536

RESOURCES = {
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "LeaderWorkerSet": ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
    "ScaledObject": ("keda.sh", "v1alpha1", "scaledobjects"),
    "PodMonitoring": ("monitoring.googleapis.com", "v1", "podmonitorings"),
    "ConfigMap": ("", "v1", "configmaps"),
}


def write(target, data):
    if len(data) > MAX_LEN:
        return 0
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    (directory / name).write_bytes(data)
    return 1


def yaml_files():
    for base in [ROOT / "testdata", ROOT.parent / "shared" / "corpus"]:
        if base.is_dir():
            yield from sorted(base.rglob("*.yaml"))
            yield from sorted(base.rglob("*.yml"))


def alias_bombs(documents):
    """`documents` small billion-laughs documents (tests/common/mod.rs has
    the same): each stays under a per-document alias bound, together they
    ask for millions of nodes, as the input that took the server to 1.3 GB."""
    one = (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d]\n"
    )
    return "---\n".join([one] * documents)


def adapter_config_map(config):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "adapter-config",
            "namespace": "monitoring",
            "labels": {"app.kubernetes.io/name": "prometheus-adapter"},
        },
        "data": {"config.yaml": config},
    }


def hostile_seeds(counts):
    """Inputs of attack classes found before, so the fuzzers start there."""
    config = alias_bombs(100)
    as_yaml = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adapter-config\n"
        "  labels:\n    app.kubernetes.io/name: prometheus-adapter\ndata:\n  config.yaml: |\n"
        + "".join(f"    {line}\n" for line in config.splitlines())
    )
    for target in ["loader", "fix"]:
        counts[target] += write(target, as_yaml.encode())
        counts[target] += write(target, alias_bombs(100).encode())
    request = {
        "uid": "seed-alias-bombs",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "name": "adapter-config",
        "namespace": "monitoring",
        "operation": "CREATE",
        "userInfo": {"username": "fuzz"},
        "object": adapter_config_map(config),
    }
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    counts["admission"] += write("admission", json.dumps(review).encode())


def main():
    counts = {"loader": 0, "fix": 0, "policy": 0, "admission": 0}
    hostile_seeds(counts)
    for path in yaml_files():
        try:
            data = path.read_bytes()
        except OSError:
            continue
        counts["loader"] += write("loader", data)
        counts["fix"] += write("fix", data)
        if path.name.endswith("policy.yaml"):
            counts["policy"] += write("policy", data)
        if ROOT / "testdata" not in path.parents:
            continue
        try:
            documents = list(yaml.safe_load_all(data))
        except yaml.YAMLError:
            continue
        for index, document in enumerate(documents):
            if not isinstance(document, dict) or document.get("kind") not in RESOURCES:
                continue
            group, version, resource = RESOURCES[document["kind"]]
            for operation in ["CREATE", "UPDATE"]:
                request = {
                    "uid": f"seed-{index}-{operation}",
                    "kind": {"group": group, "version": version, "kind": document["kind"]},
                    "resource": {"group": group, "version": version, "resource": resource},
                    "name": (document.get("metadata") or {}).get("name", "x"),
                    "namespace": (document.get("metadata") or {}).get("namespace", "default"),
                    "operation": operation,
                    "userInfo": {"username": "fuzz"},
                    "object": document,
                }
                if operation == "UPDATE":
                    request["oldObject"] = document
                review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
                counts["admission"] += write("admission", json.dumps(review, default=str).encode())
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        counts["policy"] += write("policy", path.read_bytes())
    print(", ".join(f"{target}: {count} seeds" for target, count in counts.items()))


if __name__ == "__main__":
    main()
