#!/usr/bin/env python3
"""Builds kubernetes.json.gz, the OpenAPI data the API server serves, from upstream swagger.json.

Usage:
    vendor.py SWAGGER_JSON [RESOURCES_RS] [OUT]

SWAGGER_JSON is kubernetes/kubernetes `api/openapi-spec/swagger.json` at the release named in
NOTICE (v1.33.1, the release whose types k8s-openapi's `v1_33` feature decodes, so client-side
and server-side field validation agree). RESOURCES_RS defaults to ../src/resources.rs: the group
versions in its `GROUPS` list, plus EXTRA_GROUP_VERSIONS below, are kept. The server narrows the
data further to the kinds it serves (`Resource` entries) when it builds each document.

What is kept:
- v2: every path of a kept group version except the deprecated `/watch/` paths, the shared
  `parameters` they reference, and the definitions reachable from them (transitively).
- v3: the same paths and definitions converted the way kube-openapi's builder3 writes them
  (k8s.io/kube-openapi `pkg/builder3/openapi.go`, `pkg/spec3`): `#/definitions/X` becomes
  `#/components/schemas/X`; a property that is a `$ref` with sibling keywords becomes
  `allOf: [{$ref}]` plus the siblings (OpenAPI 3.0 ignores siblings of `$ref`; kubectl explain
  reads `allOf`); non-body parameters carry their type
  under `schema`; a body parameter becomes `requestBody` with one entry per consumed media type;
  responses carry `content` with one entry per produced media type. Shared v2 parameters are
  inlined, as the upstream v3 files do.

The output is deterministic (sorted keys, gzip mtime 0), so re-running it on the same input
gives the same bytes.
"""
import copy
import gzip
import io
import json
import os
import re
import sys

# Group versions that are kept in addition to resources.rs `GROUPS`, so that kinds being added
# to the server find their schemas without a new vendoring run.
EXTRA_GROUP_VERSIONS = [
    ("", "v1"),
    ("batch", "v1"),
    ("discovery.k8s.io", "v1"),
    ("apiextensions.k8s.io", "v1"),
    ("admissionregistration.k8s.io", "v1"),
    ("policy", "v1"),
    ("autoscaling", "v1"),
]


def group_versions(resources_rs):
    text = open(resources_rs, encoding="utf-8").read()
    m = re.search(r"pub const GROUPS: &\[\(&str, &str\)\] = &\[(.*?)\];", text, re.S)
    if not m:
        sys.exit(f"{resources_rs}: no `pub const GROUPS` list found")
    gvs = re.findall(r'\("([^"]*)",\s*"([^"]+)"\)', m.group(1))
    return sorted(set(gvs) | set(EXTRA_GROUP_VERSIONS))


def gv_prefix(group, version):
    return f"/api/{version}/" if group == "" else f"/apis/{group}/{version}/"


def refs(node, out):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            out.add(r)
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def v3_ref(r):
    return r.replace("#/definitions/", "#/components/schemas/")


def v3_schema(s):
    """A v2 schema as the v3 documents write it."""
    if isinstance(s, list):
        return [v3_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k == "$ref":
            out[k] = v3_ref(v)
        elif k == "properties" and isinstance(v, dict):
            out[k] = {name: v3_property(p) for name, p in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = v3_schema(v)
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [v3_schema(x) for x in v]
        else:
            out[k] = copy.deepcopy(v)
    return out


def v3_property(p):
    p = v3_schema(p)
    if isinstance(p, dict) and "$ref" in p and len(p) > 1:
        ref = p.pop("$ref")
        p["allOf"] = [{"$ref": ref}]
    return p


PARAM_SCHEMA_KEYS = ("type", "format", "items", "default", "enum", "uniqueItems", "maximum", "minimum")


def v3_parameter(p, shared):
    if "$ref" in p:
        p = shared[p["$ref"].split("/")[-1]]
    q = {k: copy.deepcopy(v) for k, v in p.items() if k not in PARAM_SCHEMA_KEYS}
    schema = {k: copy.deepcopy(v) for k, v in p.items() if k in PARAM_SCHEMA_KEYS}
    if schema:
        q["schema"] = schema
    return q


def v3_operation(op, path_params, shared):
    out = {}
    params = []
    for p in op.get("parameters", []):
        full = shared[p["$ref"].split("/")[-1]] if "$ref" in p else p
        if full.get("in") == "body":
            body = {
                "content": {
                    mt: {"schema": v3_schema(full["schema"])} for mt in op.get("consumes", ["*/*"])
                }
            }
            if full.get("required"):
                body["required"] = True
            out["requestBody"] = body
        else:
            params.append(v3_parameter(p, shared))
    if params:
        out["parameters"] = params
    responses = {}
    for code, resp in op.get("responses", {}).items():
        r = {"description": resp.get("description", "")}
        if "schema" in resp:
            r["content"] = {
                mt: {"schema": v3_schema(resp["schema"])} for mt in op.get("produces", [])
            }
        responses[code] = r
    out["responses"] = responses
    for k, v in op.items():
        if k in ("parameters", "responses", "consumes", "produces", "schemes"):
            continue
        out[k] = copy.deepcopy(v)
    return out


def v3_path_item(item, shared):
    out = {}
    for k, v in item.items():
        if k == "parameters":
            out[k] = [v3_parameter(p, shared) for p in v]
        elif k in ("get", "put", "post", "delete", "patch", "head", "options"):
            out[k] = v3_operation(v, item.get("parameters", []), shared)
        else:
            out[k] = copy.deepcopy(v)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    swagger = json.load(open(sys.argv[1], encoding="utf-8"))
    resources_rs = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "src", "resources.rs")
    out_path = sys.argv[3] if len(sys.argv) > 3 else os.path.join(here, "kubernetes.json.gz")
    gvs = group_versions(resources_rs)
    prefixes = [gv_prefix(g, v) for g, v in gvs]

    paths = {
        p: item
        for p, item in swagger["paths"].items()
        if any(p.startswith(x) or p + "/" == x for x in prefixes) and "/watch/" not in p
    }
    # shared parameters and definitions reachable from the kept paths
    seen, todo = set(), set()
    refs(paths, todo)
    while todo:
        r = todo.pop()
        if r in seen:
            continue
        seen.add(r)
        kind, name = r.split("/")[1], r.split("/")[-1]
        target = swagger[kind][name]
        refs(target, todo)
    definitions = {r.split("/")[-1]: swagger["definitions"][r.split("/")[-1]]
                   for r in seen if r.startswith("#/definitions/")}
    parameters = {r.split("/")[-1]: swagger["parameters"][r.split("/")[-1]]
                  for r in seen if r.startswith("#/parameters/")}

    data = {
        "source": "kubernetes/kubernetes api/openapi-spec/swagger.json v1.33.1 (filtered by vendor.py)",
        "groupVersions": [f"{g}/{v}" if g else v for g, v in gvs],
        "v2": {"paths": paths, "definitions": definitions, "parameters": parameters},
        "v3": {
            "paths": {p: v3_path_item(item, swagger["parameters"]) for p, item in paths.items()},
            "schemas": {n: v3_schema(s) for n, s in definitions.items()},
        },
    }
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9, filename="") as f:
        f.write(raw)
    open(out_path, "wb").write(buf.getvalue())
    print(f"{out_path}: {len(paths)} paths, {len(definitions)} definitions, "
          f"{len(parameters)} parameters, {len(raw)} bytes JSON, {len(buf.getvalue())} gzipped")


if __name__ == "__main__":
    main()
