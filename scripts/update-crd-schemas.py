#!/usr/bin/env python3
"""Regenerate rules/schemas/custom-resources.json from crates.io.

The kube-custom-resources-rs project publishes, for each custom resource
group, a crate of Rust types that kopium generated from the upstream
CustomResourceDefinition (kcr_<group>). The types carry what strict
validation needs from the CRD's openAPIV3Schema: every field and its JSON
name, its type, whether it is optional, and the values of string enums.
This script fetches pinned versions of those crates with cargo, reads the
generated source and writes one JSON Schema document with a definition per
Rust type (descriptions dropped, identical definitions merged), in which
every object rejects unknown fields, as kubeconform -strict does.

What the Rust types do not keep (patterns, lengths, minimums, CEL rules) is
not checked; the apiserver checks those.

Google Managed Prometheus' PodMonitoring and ClusterPodMonitoring, and the
serving CRDs (the Gateway API Inference Extension, KServe, KubeRay, llm-d's
InferenceObjective), have no such crate. Their openAPIV3Schema comes from
../shared/schemas/ (each file names its repository, commit and licence) and
is converted directly, so their patterns, enums, lengths and required
fields are checked too (CEL rules are not). Large object nodes are stored
once as content-named definitions (KServe repeats a PodSpec per component).

    python3 scripts/update-crd-schemas.py        # needs cargo and crates.io
"""
import hashlib
import json
import pathlib
import re
import subprocess
import tempfile

from schema_defs import closure

# crate, version, source file, apiVersion/kind
CRATES = [
    ("kcr_leaderworkerset_x_k8s_io", "3.20260530.173522",
     "src/v1/leaderworkersets.rs", "leaderworkerset.x-k8s.io/v1/LeaderWorkerSet"),
    ("kcr_keda_sh", "3.20260609.65038",
     "src/v1alpha1/scaledobjects.rs", "keda.sh/v1alpha1/ScaledObject"),
    ("kcr_monitoring_coreos_com", "3.20260613.160609",
     "src/v1/servicemonitors.rs", "monitoring.coreos.com/v1/ServiceMonitor"),
    ("kcr_monitoring_coreos_com", "3.20260613.160609",
     "src/v1/podmonitors.rs", "monitoring.coreos.com/v1/PodMonitor"),
]
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "rules" / "schemas" / "custom-resources.json"
# ObjectMeta comes from the built-in schemas (see update-schemas.py).
KUBERNETES = ROOT / "rules" / "schemas" / "kubernetes-v1.37.json"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

SHARED = ROOT.parent / "shared" / "schemas"
GMP = SHARED / "gmp-monitoring-crds.json"
# The serving CRDs no crate ships, converted from their openAPIV3Schema in
# ../shared/schemas (each file names its repository, commit and licence):
# file, and the kinds taken from it (None: every kind).
SHARED_CRDS = [
    ("gateway-api-inference-extension-crds.json", None),
    ("kserve-crds.json", ["InferenceService", "ServingRuntime", "ClusterServingRuntime",
                          "LLMInferenceService", "LLMInferenceServiceConfig"]),
    ("kuberay-crds.json", None),
    ("llm-d-crds.json", ["InferenceObjective", "InferenceModelRewrite"]),
]
# Object nodes at least this large (serialised) are shared definitions:
# the KServe CRDs repeat a whole PodSpec in every component, and one copy
# of each is enough.
HOIST_BYTES = 2000
# What a structural schema keeps that JSON Schema reads the same way.
KEPT = ("type", "enum", "pattern", "required", "maxLength", "minLength",
        "maxItems", "minItems", "minimum", "maximum")


def from_structural(schema):
    """A CRD's openAPIV3Schema node as strict JSON Schema: unknown fields
    are rejected where the CRD lists properties (as the apiserver prunes
    them), int-or-string takes both, descriptions, defaults, formats and
    CEL rules are dropped."""
    if schema.get("x-kubernetes-int-or-string"):
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    out = {key: schema[key] for key in KEPT if key in schema}
    # A required field with a default is never missing: the apiserver
    # applies structural defaults to the request before it validates it
    # (Kubernetes documentation, "Versions in CustomResourceDefinitions",
    # Defaulting). KubeRay's worker groups require maxReplicas that way.
    if "required" in out:
        defaulted = {
            name for name, child in schema.get("properties", {}).items() if "default" in child
        }
        out["required"] = [name for name in out["required"] if name not in defaulted]
        if not out["required"]:
            del out["required"]
    if "properties" in schema:
        out["properties"] = {
            name: from_structural(child) for name, child in schema["properties"].items()
        }
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = from_structural(schema["additionalProperties"])
    if "items" in schema:
        out["items"] = from_structural(schema["items"])
    if "anyOf" in schema:
        out["anyOf"] = [from_structural(option) for option in schema["anyOf"]]
    return out


def hoist(node, defs):
    """Replace large object nodes of a converted schema, innermost first,
    by references to definitions named by their content, so that
    identical subtrees are stored once."""
    if isinstance(node, list):
        return [hoist(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: hoist(value, defs) for key, value in node.items()}
    if "properties" in node:
        body = json.dumps(node, sort_keys=True)
        if len(body) >= HOIST_BYTES:
            name = "crd." + hashlib.sha256(body.encode()).hexdigest()[:16]
            defs[name] = node
            return {"$ref": f"#/$defs/{name}"}
    return node


def shared_definitions(path, only=None):
    """Definitions and roots of the kinds of a ../shared/schemas file, and
    their provenance."""
    document = json.loads(path.read_text())
    defs, roots, sources = {}, {}, {}
    for kind, versions in sorted(document["kinds"].items()):
        if only is not None and kind not in only:
            continue
        for api_version, version in sorted(versions.items()):
            schema = version["openAPIV3Schema"]
            # Where this version's CRD comes from, for messages: a version
            # taken from a release tag names that tag.
            origin = version.get("source") or {}
            repository = origin.get("repository", document["source"]["repository"])
            at = origin.get("ref") or (origin.get("commit") or document["source"]["commit"])[:12]
            sources[f"{api_version}/{kind}"] = f"{repository}@{at}"
            root = f"{api_version.replace('/', '.')}.{kind}"
            properties = schema.get("properties", {})
            spec = from_structural(properties.get("spec", {"type": "object"}))
            defs[root] = {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"$ref": f"#/$defs/{OBJECT_META}"},
                    "spec": hoist(spec, defs),
                    "status": {},
                },
                "required": [key for key in schema.get("required", []) if key in ("spec",)],
                "additionalProperties": False,
            }
            roots[f"{api_version}/{kind}"] = root
    source = document["source"]
    provenance = {
        "repository": source["repository"],
        "commit": source["commit"],
        "license": source["license"],
        "files": source["files"],
        "via": f"shared/schemas/{path.name}",
    }
    if "otherCommits" in source:
        provenance["otherCommits"] = source["otherCommits"]
    return defs, roots, provenance, sources


ITEM = re.compile(r"^pub (struct|enum) (\w+) \{\s*$")
FIELD = re.compile(r"^\s+pub (?:r#)?(\w+): (.+),\s*$")
VARIANT = re.compile(r"^\s+(\w+),\s*$")
RENAME = re.compile(r'rename = "([^"]+)"')
KUBE = re.compile(r'#\[kube\(group = "([^"]+)", version = "([^"]+)", kind = "([^"]+)"')


def parse_items(text):
    """The structs and enums of a kopium file: name -> (kind, members)."""
    items, current, rename, resource = {}, None, None, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("///") or not stripped:
            continue
        if (found := KUBE.match(stripped)) is not None:
            resource = found.groups()
            continue
        if current is None:
            if (found := ITEM.match(line)) is not None:
                kind, name = found.groups()
                current = (name, kind, [])
                if resource is not None and kind == "struct":
                    items["@resource"] = (resource, name)
                    resource = None
            continue
        name, kind, members = current
        if stripped == "}":
            items[name] = (kind, members)
            current = None
        elif stripped.startswith("#[serde("):
            found = RENAME.search(stripped)
            rename = found.group(1) if found else None
        elif kind == "struct" and (found := FIELD.match(line)) is not None:
            members.append((rename or found.group(1), found.group(2)))
            rename = None
        elif kind == "enum" and (found := VARIANT.match(line)) is not None:
            members.append(rename or found.group(1))
            rename = None
        else:
            raise SystemExit(f"unexpected line in {name}: {line!r}")
    return items


def split_generic(text):
    """`Option<Vec<X>>` -> ("Option", "Vec<X>"); `String` -> ("String", None)."""
    if "<" not in text:
        return text.strip(), None
    head, rest = text.split("<", 1)
    assert rest.endswith(">"), text
    return head.strip(), rest[:-1].strip()


def type_schema(rust, prefix):
    """JSON Schema for a Rust type, and whether the field may be left out."""
    head, inner = split_generic(rust)
    if head == "Option":
        return type_schema(inner, prefix)[0], True
    if head == "Vec":
        return {"type": "array", "items": type_schema(inner, prefix)[0]}, False
    if head == "BTreeMap":
        key, value = inner.split(",", 1)
        assert key.strip() == "String", rust
        return {"type": "object", "additionalProperties": type_schema(value, prefix)[0]}, False
    scalar = {
        "String": {"type": "string"},
        "bool": {"type": "boolean"},
        "i32": {"type": "integer"},
        "i64": {"type": "integer"},
        "f64": {"type": "number"},
        "IntOrString": {"type": ["integer", "string"]},
        "Condition": {},
        "serde_json::Value": {},
    }
    if head in scalar:
        return dict(scalar[head]), False
    return {"$ref": f"#/$defs/{prefix}{head}"}, False


def definitions(items, prefix):
    defs = {}
    for name, (kind, members) in items.items():
        if name == "@resource":
            continue
        if kind == "enum":
            defs[prefix + name] = {"type": "string", "enum": members}
            continue
        properties, required = {}, []
        for json_name, rust in members:
            schema, optional = type_schema(rust, prefix)
            properties[json_name] = schema
            if not optional:
                required.append(json_name)
        node = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            node["required"] = sorted(required)
        defs[prefix + name] = node
    return defs


def merge_identical(defs, roots):
    """Merge definitions with the same body (kopium writes one Rust type per
    place, so a PodSpec under leaderTemplate and workerTemplate is written
    twice); repeat until nothing changes."""
    keep = set(roots)
    while True:
        by_body, renames = {}, {}
        for name in sorted(defs):
            body = json.dumps(defs[name], sort_keys=True)
            if body in by_body and name not in keep:
                renames[name] = by_body[body]
            else:
                by_body.setdefault(body, name)
        if not renames:
            return defs
        text = json.dumps({k: v for k, v in defs.items() if k not in renames})
        for old, new in renames.items():
            text = text.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
        defs = json.loads(text)


def fetch_sources():
    """Download the pinned crates with cargo; return {crate: source dir}."""
    with tempfile.TemporaryDirectory() as tmp:
        project = pathlib.Path(tmp)
        deps = "\n".join(
            f'{crate} = {{ version = "={version}", default-features = false }}'
            for crate, version in sorted({(c, v) for c, v, _, _ in CRATES})
        )
        (project / "Cargo.toml").write_text(
            f'[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\n{deps}\n'
        )
        (project / "src").mkdir()
        (project / "src" / "lib.rs").write_text("")
        metadata = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--quiet"],
            cwd=project, check=True, capture_output=True, text=True,
        ).stdout
    return {
        package["name"]: pathlib.Path(package["manifest_path"]).parent
        for package in json.loads(metadata)["packages"]
    }


def main():
    sources = fetch_sources()
    kubernetes = json.loads(KUBERNETES.read_text())["$defs"]
    defs = closure(kubernetes, [OBJECT_META])
    roots, provenance = {}, []
    for crate, version, file, api_kind in CRATES:
        text = (sources[crate] / file).read_text()
        items = parse_items(text)
        (group, api_version, kind), spec = items["@resource"]
        assert f"{group}/{api_version}/{kind}" == api_kind, (api_kind, group, api_version, kind)
        prefix = f"{group}.{api_version}."
        defs.update(definitions(items, prefix))
        root = prefix + kind
        defs[root] = {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"$ref": f"#/$defs/{OBJECT_META}"},
                "spec": {"$ref": f"#/$defs/{prefix}{spec}"},
                # status is written by the controller, not by the manifest
                "status": {},
            },
            "additionalProperties": False,
        }
        roots[api_kind] = root
        kopium = re.search(r"// kopium version: (\S+)", text)
        provenance.append({
            "kind": api_kind,
            "crate": f"crates.io {crate} {version}",
            "file": file,
            "generator": f"kopium {kopium.group(1) if kopium else 'unknown'}",
        })
    gmp_defs, gmp_roots, gmp_source, _ = shared_definitions(GMP)
    defs.update(gmp_defs)
    roots.update(gmp_roots)
    serving, serving_sources = [], {}
    for name, only in SHARED_CRDS:
        shared_defs, shared_roots, shared_source, sources = shared_definitions(SHARED / name, only)
        defs.update(shared_defs)
        roots.update(shared_roots)
        serving.append(shared_source)
        serving_sources.update(sources)
    defs = merge_identical(closure(defs, roots.values()), roots.values())
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-infergate-source": {
            "crates": provenance,
            "gmp": gmp_source,
            "serving": serving,
            "objectMeta": f"{KUBERNETES.name} ({OBJECT_META})",
            "regenerate": "python3 scripts/update-crd-schemas.py",
        },
        "x-infergate-roots": roots,
        # The serving CRDs move faster than infergate's copy: a field they
        # gained later is reported as not in this CRD, naming it.
        "x-infergate-root-sources": serving_sources,
        "$defs": closure(defs, roots.values()),
    }
    OUT.write_text(json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(document['$defs'])} definitions, "
          f"{OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
