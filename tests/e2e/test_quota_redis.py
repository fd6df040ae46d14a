"""
Cluster-wide quotas (auth.quota_redis_url) against the real binary and a
real redis-server on loopback:

- two instances (two data dirs, the same configured keys) share one
  request bucket: a burst of 5 is 5 across both, the rest 429 with
  Retry-After; and one day's ingest bytes, which a restart keeps;
- `server.workers: 2` shares one bucket between the workers;
- GET /v1/admin/usage reports every instance's numbers ("scope":
  "cluster");
- Redis killed: requests are still answered, by each instance's own
  limits ("scope": "instance"), and ragd_quota_redis_errors_total counts
  them; Redis back: the shared limits apply again.
"""
import http.client
import json
import re
import time

import pytest

from conftest import auth_args
from redis_servers import RedisServer

LIGHT = ["--set", "models.generator="]  # no answers needed: no LLM to load
DOC = {"text": "A short document about shared quotas and their limits. " * 5}
DOC_BYTES = len(json.dumps(DOC).encode())  # what ingest is charged: the request body


def keys():
    return {
        "admin": ("acme", "admin"),
        "burst": ("acme", "reader", {"requests_per_s": 1, "burst": 5}),
        "slow": ("acme", "reader", {"requests_per_s": 0.02, "burst": 3}),
        "ingest": ("acme", "writer", {"ingest_bytes_per_day": DOC_BYTES * 3 // 2}),
    }


@pytest.fixture
def redis(tmp_path):
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


def quota_flags(redis):
    return ["--set", f"auth.quota_redis_url=redis://127.0.0.1:{redis.port}"]


def call(port, token, method="GET", path="/v1/collections", body=None, conn=None):
    """(status, headers, parsed body) of one request with token."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    hdrs = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=hdrs)
    r = c.getresponse()
    raw = r.read()
    if conn is None:
        c.close()
    return r.status, dict(r.getheaders()), (json.loads(raw) if raw[:1] in b"{[" else raw)


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def usage(srv, tokens, name):
    """The usage entry of key `name`, read through srv with the admin key."""
    key_id = tokens[name].split("_")[1]
    status, _, body = call(srv.port, tokens["admin"], path=f"/v1/admin/usage/{key_id}")
    assert status == 200, body
    return body["keys"][0]


def two_instances(ragd_factory, tmp_path, redis):
    flags, tokens = auth_args(keys(), tmp_path)
    a = ragd_factory(extra_args=[*flags, *LIGHT, *quota_flags(redis)])
    b = ragd_factory(extra_args=[*flags, *LIGHT, *quota_flags(redis)])
    return a, b, tokens


def burst(ports, token, n):
    """n requests, alternating over ports: (admitted, seconds taken, statuses)."""
    statuses = []
    t0 = time.monotonic()
    for i in range(n):
        status, headers, body = call(ports[i % len(ports)], token)
        assert status in (200, 429), (status, body)
        if status == 429:
            assert body["error"]["code"] == "rate_limited", body
            assert int(headers["Retry-After"]) >= 1, headers
        statuses.append(status)
    return statuses.count(200), time.monotonic() - t0, statuses


def test_two_instances_share_the_bucket_and_the_day(ragd_factory, tmp_path, redis):
    a, b, tokens = two_instances(ragd_factory, tmp_path, redis)

    # requests_per_s 1, burst 5: five across both (alone, each would admit five).
    admitted, took, statuses = burst([a.port, b.port], tokens["burst"], 12)
    assert 5 <= admitted <= 5 + int(took), (statuses, took)
    assert statuses[:5] == [200] * 5, statuses
    u = usage(b, tokens, "burst")["usage"]
    assert u["scope"] == "cluster", u
    assert u["requests_total"] == admitted and u["rejections"]["requests"] == 12 - admitted, u

    # Ingest bytes per day: 1.5 documents' worth, spent on A, refused on B.
    for srv in (a, b):
        assert call(srv.port, tokens["admin"], "POST", "/v1/collections",
                    {"name": "q"})[0] == 201
    status, _, body = call(a.port, tokens["ingest"], "POST", "/v1/collections/q/documents", DOC)
    assert status in (200, 201), body
    status, headers, body = call(b.port, tokens["ingest"], "POST",
                                 "/v1/collections/q/documents", DOC)
    assert status == 429 and "ingest" in body["error"]["message"], body
    assert 1 <= int(headers["Retry-After"]) <= 86400
    u = usage(b, tokens, "ingest")["usage"]
    assert u["ingest_bytes_today"] == DOC_BYTES and u["ingest_bytes_total"] == DOC_BYTES, u
    assert u["rejections"]["ingest_bytes"] == 1, u

    # A restart forgets nothing: the day's bytes are in Redis.
    a.restart()
    status, _, body = call(a.port, tokens["ingest"], "POST", "/v1/collections/q/documents", DOC)
    assert status == 429, body
    u = usage(a, tokens, "ingest")["usage"]
    assert u["ingest_bytes_today"] == DOC_BYTES and u["rejections"]["ingest_bytes"] == 2, u

    # Redis holds key ids only: no tenant, no secret in any key name.
    names = redis.cli("--scan", "--pattern", "*").split()
    assert names and all(n.startswith("ragd:quota:{") for n in names), names
    assert not any("acme" in n for n in names)
    assert not any(t.split("_")[2] in n for t in tokens.values() for n in names)


def conns_by_worker(port, token, timeout=60):
    """A keep-alive connection to each of two workers: [conn0, conn1]."""
    found = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(found) < 2:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        m = re.search(r'^ragd_worker_starts\{worker="(\d+)"\} \d+', text, re.M)
        assert m, "no ragd_worker_starts in /metrics"
        if int(m.group(1)) in found:
            c.close()
        else:
            found[int(m.group(1))] = c
    assert len(found) == 2, f"reached only workers {sorted(found)}"
    return [found[0], found[1]]


def test_workers_share_one_bucket(ragd_factory, tmp_path, redis):
    flags, tokens = auth_args(keys(), tmp_path)
    srv = ragd_factory(extra_args=[*flags, *LIGHT, *quota_flags(redis),
                                   "--set", "server.workers=2"])
    conns = conns_by_worker(srv.port, tokens["burst"])
    statuses = []
    t0 = time.monotonic()
    for i in range(12):
        status, headers, _ = call(srv.port, tokens["burst"], conn=conns[i % 2])
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
    took = time.monotonic() - t0
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}, statuses
    assert 5 <= admitted <= 5 + int(took), (statuses, took)  # per worker it would be 10
    for c in conns:
        c.close()


def test_redis_down_falls_back_to_local_limits_and_recovers(ragd_factory, tmp_path, redis):
    a, b, tokens = two_instances(ragd_factory, tmp_path, redis)
    slow = tokens["slow"]  # burst 3, then one per 50 s: no refill within the test

    admitted, _, statuses = burst([a.port, b.port], slow, 6)
    assert admitted == 3, statuses
    assert metric(a.port, "ragd_quota_redis_errors_total") == 0

    redis.kill()
    # Still answered: A's own bucket decides, full as it was never drawn on.
    admitted, _, statuses = burst([a.port], slow, 5)
    assert admitted == 3, statuses
    assert call(a.port, tokens["admin"])[0] == 200
    assert metric(a.port, "ragd_quota_redis_errors_total") >= 6
    u = usage(a, tokens, "slow")
    assert u["usage"]["scope"] == "instance", u
    assert "quota: redis" in a.stderr_text()

    # Back, empty: the shared bucket is full again and is one bucket again.
    redis.start()
    time.sleep(1.0)  # the link's back-off after a failure is half a second
    admitted, _, statuses = burst([a.port], slow, 4)
    assert admitted == 3, statuses  # A's own bucket is spent: this is Redis's
    admitted, _, statuses = burst([b.port], slow, 3)
    assert admitted == 0, statuses  # B's own bucket is full: this is Redis's too
    assert usage(b, tokens, "slow")["usage"]["scope"] == "cluster"
    assert "limits are cluster-wide again" in a.stderr_text()
