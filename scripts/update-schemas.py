#!/usr/bin/env python3
"""Regenerate rules/schemas/ from the PyPI package kubernetes-validate.

kubernetes-validate ships the Kubernetes OpenAPI definitions as JSON Schema
for each Kubernetes minor version, in a "strict" variant where objects
reject unknown fields (additionalProperties: false), as kubeconform -strict
does. This script keeps, for each supported version, the definitions
reachable from the kinds schema-strict validates, without their
descriptions, and records where they came from.

    python3 scripts/update-schemas.py            # needs pip and PyPI access
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

from schema_defs import closure

PACKAGE = "kubernetes-validate"
PACKAGE_VERSION = "1.37.0"
KUBERNETES_VERSIONS = ["1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37"]
ROOTS = {
    "apps/v1/Deployment": "io.k8s.api.apps.v1.Deployment",
    "apps/v1/StatefulSet": "io.k8s.api.apps.v1.StatefulSet",
    "autoscaling/v2/HorizontalPodAutoscaler": "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
}
OUT = pathlib.Path(__file__).resolve().parent.parent / "rules" / "schemas"


def strip(node):
    """Drop prose and vendor extensions; keep what validates."""
    if isinstance(node, dict):
        return {
            key: strip(value)
            for key, value in node.items()
            if key != "description" and not key.startswith("x-kubernetes")
        }
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             f"{PACKAGE}=={PACKAGE_VERSION}", "-d", tmp],
            check=True,
        )
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            OUT.mkdir(parents=True, exist_ok=True)
            for version in KUBERNETES_VERSIONS:
                member = f"kubernetes_validate/kubernetes-json-schema/v{version}.0-local-strict/_definitions.json"
                defs = json.loads(archive.read(member))["$defs"]
                document = {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "x-infergate-source": {
                        "package": f"PyPI {PACKAGE} {PACKAGE_VERSION}",
                        "file": member,
                        "kubernetes": version,
                        "regenerate": "python3 scripts/update-schemas.py",
                    },
                    "x-infergate-roots": ROOTS,
                    "$defs": {name: strip(body) for name, body in closure(defs, ROOTS.values()).items()},
                }
                target = OUT / f"kubernetes-v{version}.json"
                target.write_text(json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n")
                print(f"{target.relative_to(OUT.parent.parent)}: {len(document['$defs'])} definitions")


if __name__ == "__main__":
    main()
