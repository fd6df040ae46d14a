"""
Prometheus / Grafana operations artefacts and ragd's GET /metrics.

- deploy/prometheus/{alerts,recording}.yml pass `promtool check rules` and
  the unit tests in alerts_test.yml (`promtool test rules`);
- deploy/prometheus/prometheus.yml passes `promtool check config`;
- deploy/grafana/ragd-dashboard.json is valid, and every panel query is valid
  PromQL that uses only metric families ragd exports;
- GET /metrics: content type, `promtool check metrics` parses it, every design
  family is there with its # TYPE, and the counters move exactly as much as
  the traffic sent;
- a real `prometheus` scrapes ragd on loopback, loads the rule files, and
  answers PromQL over what it scraped.

promtool and prometheus are required (CI installs Debian's `prometheus`
package); $PROMTOOL / $PROMETHEUS override the binaries found on PATH.
"""
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse

import pytest

from conftest import REPO, free_port, http_request

PROM_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "ragd-dashboard.json"

SEARCH_ROUTE = "/v1/collections/{name}/search"

# The families ragd's /metrics must export, with their types.
FAMILIES = {
    "cpu_usage_percentage": "gauge",
    "memory_usage_bytes": "gauge",
    "active_connections": "gauge",
    "requests_per_second": "counter",
    "response_time_ms": "histogram",
    "queue_size": "gauge",
    "model_loading_time_ms": "histogram",
    "queries_per_second": "counter",
    "ragd_http_requests_total": "counter",
    "ragd_http_request_duration_ms": "histogram",
    "ragd_ingest_documents_total": "counter",
    "ragd_ingest_chunks_total": "counter",
    "ragd_ingest_bytes_total": "counter",
    "ragd_ingest_failures_total": "counter",
    "ragd_index_vectors": "gauge",
    "ragd_index_memory_bytes": "gauge",
    "ragd_changelog_lag_seq": "gauge",
    "ragd_changelog_lag_seconds": "gauge",
    "ragd_cache_hits_total": "counter",
    "ragd_cache_misses_total": "counter",
    "ragd_cache_bypass_total": "counter",
    "ragd_cache_errors_total": "counter",
    "ragd_cache_entries": "gauge",
    "ragd_cache_memory_bytes": "gauge",
    "ragd_cache_evictions_total": "counter",
    "ragd_cache_up": "gauge",
    "ragd_build_info": "gauge",
    "ragd_ready": "gauge",
    "ragd_memory_limit_bytes": "gauge",
}
RESPONSE_TIME_BUCKETS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]


def tool(name):
    path = os.environ.get(name.upper()) or shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found on PATH (install Debian's `prometheus` package "
                    f"or set ${name.upper()})", pytrace=False)
    return path


def run_tool(*args, stdin=None, timeout=120):
    p = subprocess.run(list(args), input=stdin, capture_output=True, timeout=timeout, cwd=REPO)
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


# -- the exposition format ----------------------------------------------------

def _parse_labels(s, i, line):
    """Parses `name="value",...}` from s[i:] (just after the `{`).
    Returns (dict, index after the `}`)."""
    labels = {}
    while True:
        while i < len(s) and s[i] in " \t":
            i += 1
        if s[i] == "}":
            return labels, i + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, i)
        assert m, f"bad label name in {line!r}"
        name = m.group(0)
        i = m.end()
        while s[i] in " \t":
            i += 1
        assert s[i] == "=", f"expected '=' in {line!r}"
        i += 1
        while s[i] in " \t":
            i += 1
        assert s[i] == '"', f"expected '\"' in {line!r}"
        i += 1
        val = []
        while s[i] != '"':
            if s[i] == "\\":
                nxt = s[i + 1]
                val.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                i += 2
            else:
                val.append(s[i])
                i += 1
        i += 1
        assert name not in labels, f"label {name} repeated in {line!r}"
        labels[name] = "".join(val)
        while s[i] in " \t":
            i += 1
        if s[i] == ",":
            i += 1


def parse_exposition(text):
    """Text format 0.0.4 -> (types {family: type}, helps {family: help},
    samples [(name, {labels}, float)])."""
    types, helps, samples = {}, {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                assert parts[2] not in types, f"second # TYPE for {parts[2]}"
                types[parts[2]] = parts[3].strip()
            elif len(parts) >= 3 and parts[1] == "HELP":
                helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        assert m, f"bad sample line {line!r}"
        name, i = m.group(0), m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i + 1, line)
        fields = line[i:].split()
        assert 1 <= len(fields) <= 2, f"bad sample line {line!r}"
        value = float(fields[0])  # accepts NaN, +Inf, -Inf
        samples.append((name, labels, value))
    return types, helps, samples


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return name[: -len(suffix)]
    return name


def value_of(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
    return sum(v for n, ls, v in samples
               if n == name and all(ls.get(k) == want for k, want in labels.items()))


def has_sample(samples, name, **labels):
    return any(n == name and all(ls.get(k) == want for k, want in labels.items())
               for n, ls, _v in samples)


def scrape(srv):
    status, _, raw = srv.raw_request("GET", "/metrics")
    assert status == 200, (status, raw[:500])
    return parse_exposition(raw.decode())


def test_exposition_parser():
    """The parser itself, on the awkward corners of the format."""
    text = ('# HELP a_total A counter.\n# TYPE a_total counter\n'
            'a_total{route="/v1/collections/{name}/search",x="q\\"\\\\\\n",} 3 1700000000000\n'
            '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1.5e3\nh_count 2\n'
            'g NaN\n')
    types, helps, samples = parse_exposition(text)
    assert types == {"a_total": "counter", "h": "histogram"}
    assert helps["a_total"] == "A counter."
    assert samples[0] == ("a_total", {"route": SEARCH_ROUTE, "x": 'q"\\\n'}, 3.0)
    assert value_of(samples, "h_sum") == 1500.0
    assert family_of("h_bucket", types) == "h" and family_of("a_total", types) == "a_total"
    assert math.isnan(samples[-1][2])


# -- rules and config (promtool only; no ragd needed) --------------------------

def test_rules_check():
    rc, out = run_tool(tool("promtool"), "check", "rules",
                       str(PROM_DIR / "alerts.yml"), str(PROM_DIR / "recording.yml"))
    assert rc == 0, out
    assert "SUCCESS: 6 rules found" in out, out


def test_rules_unit_tests():
    rc, out = run_tool(tool("promtool"), "test", "rules", str(PROM_DIR / "alerts_test.yml"))
    assert rc == 0, out
    assert "SUCCESS" in out, out


def test_alerts_all_tested():
    """alerts_test.yml covers every alert in alerts.yml (a crude textual check:
    promtool does not report untested rules)."""
    alerts = re.findall(r"^\s*- alert:\s*(\w+)", (PROM_DIR / "alerts.yml").read_text(), re.M)
    assert sorted(alerts) == sorted(["HighCPUUsage", "HighMemoryUsage", "HighResponseTime",
                                     "HighErrorRate", "RagdNotReady", "RagdDown"])
    tested = re.findall(r"alertname:\s*(\w+)", (PROM_DIR / "alerts_test.yml").read_text())
    for a in alerts:
        # at least one firing and one not-firing evaluation per alert
        assert tested.count(a) >= 2, f"{a} is not tested both ways"
    assert "ragd:queries_per_second:rate1m" in (PROM_DIR / "alerts_test.yml").read_text()


def test_prometheus_config_check():
    rc, out = run_tool(tool("promtool"), "check", "config", str(PROM_DIR / "prometheus.yml"))
    assert rc == 0, out
    assert "SUCCESS: 2 rule files found" in out, out


# -- the Grafana dashboard -----------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr):
    """The metric names an expression selects: strings, label matchers,
    grouping clauses, ranges, Grafana variables and function calls removed."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\$\{[^}]*\}|\$\w+", "", e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        if word.lower() in PROMQL_WORDS:
            continue
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue  # exponent of a number, e.g. 1e3
        if re.match(r"\s*\(", e[m.end():]):
            continue  # function or aggregation call
        names.add(word)
    return names


def allowed_metric_names():
    names = {"up"}
    for fam, typ in FAMILIES.items():
        names.add(fam)
        if typ == "histogram":
            names |= {fam + "_bucket", fam + "_sum", fam + "_count"}
    return names


def dashboard_panels(d):
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])


def test_metric_names_helper():
    assert metric_names('histogram_quantile(0.95, sum by (instance, le) '
                        '(rate(response_time_ms_bucket{job="ragd", le=~"1e3"}[$__rate_interval])))') \
        == {"response_time_ms_bucket"}
    assert metric_names('a / on (instance) (b > 0) and up{x="y"} * 1e3') == {"a", "b", "up"}


def test_grafana_dashboard():
    d = json.loads(DASHBOARD.read_text())
    assert 36 <= d["schemaVersion"] <= 41
    assert any(i["name"] == "DS_PROMETHEUS" and i["pluginId"] == "prometheus"
               for i in d.get("__inputs", []))
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"

    allowed = allowed_metric_names()
    exprs, ids, used = [], set(), set()
    for var in variables.values():
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)
            assert inner, q
            exprs.append(("variable " + var["name"], inner.group(1)))
    for p in dashboard_panels(d):
        assert p["id"] not in ids, f"panel id {p['id']} repeated"
        ids.add(p["id"])
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]), p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
            exprs.append((p["title"], t["expr"]))
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= allowed, f"{title}: unknown metrics {sorted(names - allowed)} in {expr!r}"
        used |= names
    # Every design family is on the dashboard somewhere.
    for fam, typ in FAMILIES.items():
        forms = {fam, fam + "_bucket", fam + "_sum", fam + "_count"} if typ == "histogram" else {fam}
        assert used & forms, f"no panel shows {fam}"
    titles = " | ".join(p["title"].lower() for p in dashboard_panels(d))
    for want in ("request rate", "latency", "error rate", "queries/s", "cpu", "memory",
                 "active connections", "queue", "ingest", "index vectors", "change-log lag",
                 "cache hit ratio"):
        assert want in titles, f"no panel titled like {want!r}: {titles}"


def test_grafana_dashboard_promql_valid(tmp_path):
    """Every panel query parses as PromQL: promtool checks them as recording
    rules, with the Grafana variables replaced by plain values."""
    d = json.loads(DASHBOARD.read_text())
    rules = []
    for p in dashboard_panels(d):
        for t in p.get("targets", []):
            expr = (t["expr"].replace("$__rate_interval", "1m").replace("$__interval", "1m")
                    .replace("$instance", ".*"))
            assert "$" not in expr, expr
            rules.append({"record": f"dashboard:panel{p['id']}:{t['refId']}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    # JSON is YAML: no YAML library needed.
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}, indent=1))
    rc, out = run_tool(tool("promtool"), "check", "rules", str(path))
    assert rc == 0, out


# -- ragd's /metrics (needs the ragd feature) --------------------------------

@pytest.fixture(scope="module")
def traffic(ragd):
    """Known traffic on the shared server: a collection, 3 documents, 5 searches."""
    ragd.create_collection("prom")
    for i, text in enumerate(["The lighthouse keeper trimmed the lamp at dusk.",
                              "Sourdough bread needs a lively starter and patience.",
                              "Glaciers carve U-shaped valleys as they retreat."]):
        ragd.add_doc("prom", text, doc_id=f"d{i}")
    for q in ("lighthouse", "bread", "glacier", "valley", "lamp"):
        ragd.search("prom", q, top_k=2)
    return ragd


def test_metrics_content_type_and_promtool(traffic):
    conn = http.client.HTTPConnection("127.0.0.1", traffic.port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        raw = resp.read()
        status, conn_type = resp.status, resp.getheader("Content-Type", "")
    finally:
        conn.close()
    assert status == 200, raw[:500]
    ctype = [p.strip().lower() for p in conn_type.split(";")]
    assert ctype[0] == "text/plain" and "version=0.0.4" in ctype, conn_type
    # promtool check metrics: exit 0 = clean, 3 = lint findings only (the
    # design's names, e.g. a counter without _total, are lint findings);
    # 1 with "error while linting" = the body does not parse.
    rc, out = run_tool(tool("promtool"), "check", "metrics", stdin=raw)
    assert rc in (0, 3) and "error while linting" not in out and "parsing error" not in out, \
        f"rc={rc}\n{out}"
    types, _helps, samples = parse_exposition(raw.decode())
    for name, _labels, _v in samples:
        assert family_of(name, types) in types, f"sample {name} has no # TYPE"


def test_metrics_families(traffic):
    types, helps, samples = scrape(traffic)
    missing = [f for f in FAMILIES if f not in types]
    assert not missing, f"families missing from /metrics: {missing}"
    wrong = {f: (types[f], t) for f, t in FAMILIES.items() if types[f] != t}
    assert not wrong, f"wrong # TYPE (got, want): {wrong}"
    for fam in ("cpu_usage_percentage", "memory_usage_bytes", "active_connections", "queue_size",
                "requests_per_second", "queries_per_second", "ragd_ready",
                "ragd_memory_limit_bytes", "ragd_ingest_documents_total"):
        assert has_sample(samples, fam), f"no sample for {fam}"
    assert value_of(samples, "ragd_ready") == 1
    assert value_of(samples, "memory_usage_bytes") > 1 << 20
    assert value_of(samples, "active_connections") >= 1  # this scrape's own connection
    assert value_of(samples, "ragd_memory_limit_bytes") >= 0
    info = [ls for n, ls, v in samples if n == "ragd_build_info" and v == 1]
    assert len(info) == 1 and info[0].get("version") and "git_sha" in info[0], info
    # the collection's index gauges (polled: the index may trail the change log)
    deadline = time.monotonic() + 10
    while value_of(samples, "ragd_index_vectors", collection="prom") < 3 \
            and time.monotonic() < deadline:
        time.sleep(0.2)
        types, helps, samples = scrape(traffic)
    assert value_of(samples, "ragd_index_vectors", collection="prom") >= 3
    assert has_sample(samples, "ragd_index_memory_bytes", collection="prom")
    assert has_sample(samples, "ragd_changelog_lag_seq", collection="prom")
    # response_time_ms: the design's buckets, cumulative, +Inf == _count
    les = [ls["le"] for n, ls, _ in samples if n == "response_time_ms_bucket"]
    assert les[:-1] and les[-1] == "+Inf", les
    assert [float(x) for x in les[:-1]] == RESPONSE_TIME_BUCKETS, les
    counts = [v for n, _ls, v in samples if n == "response_time_ms_bucket"]
    assert counts == sorted(counts), counts
    assert counts[-1] == value_of(samples, "response_time_ms_count") >= 9
    # route labels are patterns, never raw paths
    routes = {ls["route"] for n, ls, _ in samples if n == "ragd_http_requests_total"}
    assert SEARCH_ROUTE in routes, routes
    assert not any("/prom/" in r for r in routes), routes


def test_metrics_count_known_traffic(traffic):
    """Counters move by exactly the traffic sent between two scrapes."""
    srv = traffic
    search_200 = dict(route=SEARCH_ROUTE, method="POST", status="200")

    def numbers():
        _types, _helps, s = scrape(srv)
        return {
            "queries": value_of(s, "queries_per_second"),
            "search_200": value_of(s, "ragd_http_requests_total", **search_200),
            "docs": value_of(s, "ragd_ingest_documents_total"),
            "chunks": value_of(s, "ragd_ingest_chunks_total"),
            "bytes": value_of(s, "ragd_ingest_bytes_total"),
            "requests": value_of(s, "requests_per_second"),
            "rt_count": value_of(s, "response_time_ms_count"),
            "search_dur_count": value_of(s, "ragd_http_request_duration_ms_count",
                                         route=SEARCH_ROUTE, method="POST"),
        }

    before = numbers()
    for q in ("lighthouse lamp", "starter", "retreating ice"):
        srv.search("prom", q, top_k=3)
    srv.add_doc("prom", "Tide tables predict the height of the sea.", doc_id="t1")
    srv.add_doc("prom", "A kiln fires clay into stoneware.", doc_id="t2")
    # A counter may be bumped just after the response is written: allow a
    # moment for the last request to be counted, then insist on exact deltas.
    want = {"queries": 3, "search_200": 3, "docs": 2}
    deadline = time.monotonic() + 5
    while True:
        after = numbers()
        delta = {k: after[k] - before[k] for k in after}
        if all(delta[k] >= v for k, v in want.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert delta["queries"] == 3, delta
    assert delta["search_200"] == 3, delta
    assert delta["docs"] == 2, delta
    assert delta["search_dur_count"] == 3, delta
    assert delta["chunks"] >= 2, delta
    assert delta["bytes"] >= len("Tide tables predict the height of the sea."), delta
    assert delta["rt_count"] >= 5, delta
    assert delta["requests"] >= 5, delta


# -- a real Prometheus scraping ragd -----------------------------------------

class Prometheus:
    def __init__(self, tmp_path, target_port):
        self.dir = tmp_path
        self.target_port = target_port
        self.proc = None
        self.port = None

    def start(self, timeout=30):
        cfg = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PROM_DIR / "alerts.yml"), str(PROM_DIR / "recording.yml")],
            "scrape_configs": [{"job_name": "ragd", "metrics_path": "/metrics",
                                "static_configs": [{"targets": [f"127.0.0.1:{self.target_port}"]}]}],
        }
        cfg_path = self.dir / "prometheus.yml"
        cfg_path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
        last = ""
        for attempt in range(3):
            self.port = free_port()
            self.log_path = self.dir / f"prometheus-{attempt}.log"
            log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                [tool("prometheus"), f"--config.file={cfg_path}",
                 f"--storage.tsdb.path={self.dir / f'tsdb{attempt}'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    status, _, _ = http_request("127.0.0.1", self.port, "GET", "/-/ready", timeout=2)
                    if status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.1)
            last = self.log()
            self.stop()
            if "address already in use" not in last:
                break
        raise AssertionError(f"prometheus did not become ready:\n{last[-4000:]}")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def api(self, path, **params):
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        status, body, raw = http_request("127.0.0.1", self.port, "GET", f"/api/v1/{path}{q}",
                                         timeout=10)
        assert status == 200 and body and body.get("status") == "success", (status, raw[:1000])
        return body["data"]

    def query(self, promql):
        """Instant query -> list of (labels, float) for a vector result."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]


@pytest.fixture
def prometheus(traffic, tmp_path):
    p = Prometheus(tmp_path, traffic.port).start()
    yield p
    p.stop()


def test_prometheus_scrapes_ragd(traffic, prometheus):
    """A real Prometheus scrapes ragd every second and answers PromQL over
    what it scraped; the alerting and recording rules evaluate cleanly."""
    deadline = time.monotonic() + 30
    seen = {}
    while True:
        try:
            seen = {
                "up": prometheus.query('up{job="ragd"}'),
                "queries": prometheus.query('sum(queries_per_second{job="ragd"})'),
                "search": prometheus.query(
                    f'ragd_http_requests_total{{job="ragd", route="{SEARCH_ROUTE}"}}'),
            }
            ok = (seen["up"] and seen["up"][0][1] == 1
                  and seen["queries"] and seen["queries"][0][1] >= 5
                  and seen["search"])
        except AssertionError:
            ok = False
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ok, f"Prometheus did not see ragd's metrics within 30 s: {seen}\n" \
               f"targets: {json.dumps(prometheus.api('targets'))[:2000]}\n{prometheus.log()[-3000:]}"
    assert all(v >= 1 for _, v in seen["search"]), seen["search"]
    assert {ls["route"] for ls, _ in seen["search"]} == {SEARCH_ROUTE}

    # rate() needs two scrapes in the window: poll until the answers come.
    deadline = time.monotonic() + 30
    while True:
        rps = prometheus.query('sum(rate(requests_per_second{job="ragd"}[1m]))')
        p95 = prometheus.query('histogram_quantile(0.95, sum by (le) '
                               '(rate(response_time_ms_bucket{job="ragd"}[1m])))')
        rec = prometheus.query("ragd:queries_per_second:rate1m")
        if (rps and p95 and rec) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rps) == 1 and rps[0][1] > 0, rps  # the scrapes themselves are requests
    assert len(p95) == 1, p95
    assert len(rec) == 1 and rec[0][0].get("instance") == f"127.0.0.1:{traffic.port}", rec
    assert prometheus.query('ragd_ready{job="ragd"}')[0][1] == 1

    # Every rule has been evaluated at least once, and none with an error
    # (e.g. a many-to-many match on ragd's real label sets).
    deadline = time.monotonic() + 15
    while True:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        if (rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules)) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rules) == 8, [r["name"] for r in rules]
    bad = [(r["name"], r.get("health"), r.get("lastError")) for r in rules
           if r.get("health") != "ok"]
    assert not bad, bad
    firing = [r["name"] for r in rules if r["type"] == "alerting" and r.get("alerts")]
    assert "RagdDown" not in firing and "RagdNotReady" not in firing, firing
