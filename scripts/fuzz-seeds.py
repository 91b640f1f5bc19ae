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


def main():
    counts = {"loader": 0, "fix": 0, "policy": 0, "admission": 0}
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
