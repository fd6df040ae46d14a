"""
The deployment artefacts under deploy/ and the Dockerfile, checked offline:

- each check of scripts/validate-deploy.sh (helm lint, helm template for every
  variant, deploy/k8s/ in sync with the chart, kubeconform -strict against
  the vendored schemas, promtool, nginx -t, hadolint) as its own test;
- the ConfigMap the chart renders holds a configuration this ragd accepts
  (`ragd serve --check-config`), for every variant whose keys it knows;
- the chart's values are the design's (resources, probes, HPA, PDB ...);
- the Dockerfile builds with the make targets CI runs.

The tools are built once into ~/.cache/ragd/tools (scripts/validate-deploy.sh
tools): the first run takes minutes, later ones reuse them.
"""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import RAGD_BIN, REPO, ragd_env, sanitizer_findings

SCRIPT = REPO / "scripts" / "validate-deploy.sh"
CHART = REPO / "deploy" / "helm" / "ragd"
VARIANTS = ["default"] + sorted(p.name[: -len("-values.yaml")] for p in (CHART / "ci").glob("*-values.yaml"))
CHECKS = ["lint", "template", "sync", "kubeconform", "promtool", "nginx", "hadolint"]

# Configuration keys other branches add (mongo: store.*, workers:
# server.workers and replication.*, auth: auth.*, shard: sharding.*). A
# variant that uses them is checked once this binary knows them, and skipped
# (saying which key) until then.
PENDING_KEY = re.compile(r"unknown key '(store\.|server\.workers|replication\.|auth\.|sharding\.)[^']*'")


def validate(*args, timeout=1800):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tools():
    """helm, kubeconform and hadolint in the cache (built on the first run)."""
    res = validate("tools")
    assert res.returncode == 0, res.stdout + res.stderr
    version = re.search(r"^HELM_VERSION=(\S+)", SCRIPT.read_text(), re.M).group(1)
    cache = Path(os.environ.get("RAGD_CACHE", Path.home() / ".cache" / "ragd"))
    return {"helm": str(cache / "tools" / f"helm-{version}" / "helm")}


def helm_template(tools, variant, *sets):
    args = [tools["helm"], "template", "ragd", str(CHART), "--namespace", "ragd",
            "--kube-version", "1.34.0"]
    if variant != "default":
        args += ["--values", str(CHART / "ci" / f"{variant}-values.yaml")]
    for s in sets:
        args += ["--set", s]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def find(docs, kind, name=None):
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert hits, f"no {kind} {name or ''} rendered"
    return hits[0]


@pytest.mark.parametrize("check", CHECKS)
def test_validate_deploy(tools, check):
    res = validate(check, timeout=600)
    assert res.returncode == 0, f"{check} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    assert f"{check}: ok" in res.stderr


def test_kubeconform_rejects_unknown_fields(tools, tmp_path):
    """The vendored schemas are strict: a misspelt field in a core kind or in
    a CRD (ServiceMonitor, BackendConfig) fails validation."""
    docs = helm_template(tools, "observability")
    dep = find(docs, "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c["readinesProbe"] = c.pop("readinessProbe")
    sm = find(docs, "ServiceMonitor")
    sm["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    bc = find(docs, "BackendConfig")
    bc["spec"]["cdn"]["cachePolicy"]["includeQuery"] = True
    for i, doc in enumerate((dep, sm, bc)):
        bad = tmp_path / f"bad-{i}.yaml"
        bad.write_text(yaml.safe_dump(doc))
        res = validate("schema", str(bad), timeout=120)
        assert res.returncode != 0, f"{doc['kind']} with an unknown field passed:\n{res.stdout}"
        assert "Invalid: 1" in res.stdout, res.stdout


AUTH_HINT = ("ragd refuses a non-loopback server.host with auth off: switch auth.enabled to true "
             "in deploy/helm/ragd/values.yaml and deploy/docker/ragd.yaml, then "
             "scripts/validate-deploy.sh render")


def check_config(path, tmp_path):
    res = subprocess.run([str(Path(RAGD_BIN).resolve()), "serve", "--check-config", "--config", str(path)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=ragd_env())
    assert not sanitizer_findings(res.stderr), res.stderr
    assert "not a loopback address" not in res.stderr, AUTH_HINT + "\n" + res.stderr
    return res


@pytest.mark.parametrize("variant", VARIANTS)
def test_configmap_config_is_accepted(tools, variant, tmp_path):
    """ragd accepts the config the chart's ConfigMap holds, models and data
    directory pointed at this checkout's."""
    data = tmp_path / "data"
    data.mkdir()
    docs = helm_template(tools, variant, f"models.path={REPO / 'models'}", f"data.path={data}")
    cm = find(docs, "ConfigMap", "ragd")
    conf = tmp_path / "ragd.yaml"
    conf.write_text(cm["data"]["ragd.yaml"])
    res = check_config(conf, tmp_path)
    pending = PENDING_KEY.search(res.stderr)
    if res.returncode != 0 and pending:
        pytest.skip(f"{variant}: needs a key this ragd lacks yet ({pending.group(0)})")
    assert res.returncode == 0, res.stdout + res.stderr
    effective = json.loads(res.stdout.strip().splitlines()[0])
    assert effective["server"]["host"] == "0.0.0.0"
    assert effective["server"]["port"] == 8080
    assert effective["environment"] == "production"
    assert effective["data_dir"] == str(data)
    assert effective["models"]["embedder"] == str(REPO / "models" / "all-MiniLM-L6-v2.gguf")
    if variant == "observability":
        assert effective["cache"]["backend"] == "two-level"
        seeds = effective["cache"]["redis.url"].split(",")
        assert len(seeds) == 6 and seeds[0] == "ragd-redis-0.ragd-redis.ragd.svc.cluster.local:6379"


def test_container_config_is_accepted(tmp_path):
    """deploy/docker/ragd.yaml (the image's RAGD_CONFIG), with /models and
    /data pointed at this checkout's."""
    text = (REPO / "deploy" / "docker" / "ragd.yaml").read_text()
    text = text.replace("/models", str(REPO / "models")).replace("/data", str(tmp_path))
    conf = tmp_path / "ragd.yaml"
    conf.write_text(text)
    res = check_config(conf, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_chart_defaults_are_the_design(tools):
    docs = helm_template(tools, "default")
    dep = find(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"] == {"requests": {"memory": "512Mi", "cpu": "500m"},
                              "limits": {"memory": "1Gi", "cpu": "1000m"}}
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    # drain: preStop 5 s + shutdown_timeout_s 30 s + 5 s margin
    assert pod["terminationGracePeriodSeconds"] == 40
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    hpa = find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
               for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 70, "memory": 80}
    b = hpa["spec"]["behavior"]
    assert b["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert b["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert find(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    svc = find(docs, "Service", "ragd")
    assert svc["spec"]["ports"][0]["port"] == 8080
    # Without autoscaling the Deployment carries the replica count itself.
    dep = find(helm_template(tools, "default", "autoscaling.enabled=false"), "Deployment")
    assert dep["spec"]["replicas"] == 3
    # extraEnv: a setting from a Secret (a Redis URL with its password).
    dep = find(helm_template(tools, "default", "extraEnv[0].name=RAGD_CACHE_REDIS_URL",
                             "extraEnv[0].valueFrom.secretKeyRef.name=ragd-redis",
                             "extraEnv[0].valueFrom.secretKeyRef.key=url"), "Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAGD_CACHE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "ragd-redis",
                                                                       "key": "url"}
    assert "RAGD_CONFIG" in env


def test_custom_metrics_and_monitoring_objects(tools):
    docs = helm_template(tools, "observability")
    hpa = find(docs, "HorizontalPodAutoscaler")
    pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods == [{"metric": {"name": "queries_per_second"},
                     "target": {"type": "AverageValue", "averageValue": "100"}}]
    adapter = yaml.safe_load(find(docs, "ConfigMap", "ragd-prometheus-adapter")["data"]["config.yaml"])
    rule = adapter["rules"][0]
    assert rule["name"]["as"] == "queries_per_second"
    assert "rate(<<.Series>>" in rule["metricsQuery"]
    rules = find(docs, "PrometheusRule")["spec"]["groups"]
    alerts = {r["alert"] for g in rules for r in g["rules"] if "alert" in r}
    assert {"HighCPUUsage", "HighMemoryUsage", "RagdDown"} <= alerts
    sm = find(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    bc = find(docs, "BackendConfig")
    assert bc["spec"]["cdn"]["enabled"] is True and bc["spec"]["healthCheck"]["requestPath"] == "/ready"
    ann = find(docs, "Service", "ragd")["metadata"]["annotations"]
    assert json.loads(ann["cloud.google.com/backend-config"]) == {"default": "ragd"}
    gc = yaml.safe_load(find(docs, "ConfigMap", "global-config")["data"]["global-config.yaml"])
    assert gc["currentRegion"] == "us-east-1"
    assert [r["name"] for r in gc["regions"] if r["primary"]] == ["us-east-1"]
    redis = find(docs, "StatefulSet", "ragd-redis")
    assert redis["spec"]["replicas"] == 6


def test_stores_and_sharding_variants(tools):
    docs = helm_template(tools, "production")
    mongo = find(docs, "StatefulSet", "ragd-mongodb")
    assert mongo["spec"]["replicas"] == 3 and "--replSet" in mongo["spec"]["template"]["spec"]["containers"][0]["args"]
    conf = yaml.safe_load(find(docs, "ConfigMap", "ragd")["data"]["ragd.yaml"])
    assert conf["store"]["backend"] == "mongodb"
    assert conf["store"]["mongodb"]["uri"].endswith("/?replicaSet=rs0")
    assert conf["server"]["workers"] == 2 and conf["auth"]["enabled"] is True
    docs = helm_template(tools, "sharded")
    ragd = find(docs, "StatefulSet", "ragd")
    env = {e["name"]: e for e in ragd["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "apps.kubernetes.io/pod-index" in env["RAGD_SHARD_ORDINAL"]["valueFrom"]["fieldRef"]["fieldPath"]
    conf = yaml.safe_load(find(docs, "ConfigMap", "ragd")["data"]["ragd.yaml"])
    assert conf["sharding"]["instances"] == 3 and "{i}" in conf["sharding"]["peer_pattern"]
    assert conf["store"]["mongodb"]["uri"].startswith("mongodb://ragd-mongos.")
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "StatefulSet"}
    assert {"ragd-mongodb-cfg", "ragd-mongodb-shard0", "ragd-mongodb-shard1"} <= names
    # Combinations that cannot work are refused at render time.
    res = subprocess.run([tools["helm"], "template", "ragd", str(CHART), "--kube-version", "1.34.0",
                          "--set", "sharding.enabled=true"], capture_output=True, text=True)
    assert res.returncode != 0 and "autoscaling.enabled=false" in res.stderr


def ci_make_targets():
    """The make targets CI runs: .ci/run runs `make test`, whose prerequisites
    are the build steps."""
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    prereqs = re.search(r"^test:(.*)$", makefile, re.M).group(1).split()
    return set(prereqs) | {"test"}


def test_dockerfile_runs_the_ci_make_targets():
    text = (REPO / "Dockerfile").read_text()
    runs = [m.group(1) for m in re.finditer(r"^RUN (.*(?:\\\n.*)*)", text, re.M)]
    called = {t for r in runs for t in re.findall(r"\bmake (\w[\w-]*)", r)}
    assert {"build", "models"} <= called, called
    assert called <= ci_make_targets(), f"Dockerfile runs make targets CI does not: {called - ci_make_targets()}"
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, re.M)
    assert len(stages) >= 2, "not multi-stage"
    assert "ARG RUNTIME_IMAGE=debian:12-slim" in text and "ARG DEBIAN_IMAGE=debian:12" in text
    assert re.search(r"^USER 10001", text, re.M), "runtime must not run as root"
    assert re.search(r"^HEALTHCHECK .*\n.*:8080/health", text, re.M)
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    assert "ARG BAKE_MODELS=1" in text
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {"build", "models", ".git"} <= set(ignore)


def test_aws_target_tracking_examples():
    cpu = json.loads((REPO / "deploy" / "aws" / "target-tracking-cpu.json").read_text())
    assert cpu["TargetValue"] == 70.0
    assert cpu["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ASGAverageCPUUtilization"
    req = json.loads((REPO / "deploy" / "aws" / "target-tracking-requests.json").read_text())
    # 100 requests per second per instance, as the HPA's custom metric
    assert req["TargetValue"] == 6000.0
    assert req["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ALBRequestCountPerTarget"
    res = subprocess.run(["bash", "-n", str(REPO / "deploy" / "aws" / "apply-scaling-policies.sh")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("variant", ["production", "sharded"])
def test_init_job_scripts_parse(tools, variant, tmp_path):
    """The shell scripts of the init Jobs (replica set, sharded cluster, Redis
    Cluster creation) are valid sh once rendered."""
    jobs = [d for d in helm_template(tools, variant) if d["kind"] == "Job"]
    assert len(jobs) >= 2
    for job in jobs:
        cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
        assert cmd[:2] == ["sh", "-ec"], cmd
        script = tmp_path / f"{job['metadata']['name']}.sh"
        script.write_text(cmd[2])
        res = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert res.returncode == 0, f"{job['metadata']['name']}: {res.stderr}\n{cmd[2]}"
