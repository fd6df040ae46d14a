"""
A cluster of real processes on loopback: nginx (Debian's, running the
shipped deploy/nginx/ragd-lb.conf with the test's addresses) in front of
three ragd instances that share one store and one Redis (the change-log
nudge). A load generator sends searches and ingests through nginx; one
instance is killed with SIGKILL mid-run and started again later.

Pass: no search fails as the client sees it (nginx retries them on another
instance), every acknowledged document is in the store and in every
instance's index afterwards, and the restarted instance catches up and
turns ready. The cross-instance visibility of a write (acknowledged by one
instance, found by a search on another) is measured and printed; its p99
goes to bench/RESULTS.md, with only a generous bound asserted here.

The store is a parameter: STORE = os.environ.get("RAGD_CLUSTER_STORE", "mongodb") (the design's shared store:
each instance has its own data directory for snapshots, all share one
FerretDB database), or "sqlite", which shares one data directory between
the instances (one machine only); RAGD_CLUSTER_STORE overrides it.
"""
import os
import random
import threading
import time
import uuid

import pytest

from conftest import http_request
from nginx_servers import start_lb
from redis_servers import RedisServer

STORE = os.environ.get("RAGD_CLUSTER_STORE", "mongodb")

N_INSTANCES = 3
RUN_S = 14.0
KILL_AT_S = 3.0
RESTART_AT_S = 8.0
SEARCH_THREADS = 2
VISIBILITY_BOUND_S = 5.0  # generous; the figure measured is printed
WORDS = ["river", "mountain", "forest", "desert", "ocean", "valley", "island", "glacier",
         "canyon", "meadow", "volcano", "prairie"]


def store_for(kind, tmp_path):
    """(env for every instance, data dir of instance i, stop()) for the store under test."""
    if kind == "sqlite":
        shared = tmp_path / "shared-data"
        return None, lambda i: shared, lambda: None
    if kind == "mongodb":
        from ferretdb_server import start_ferretdb  # the MongoDB store's fixture
        ferret = start_ferretdb(tmp_path / "ferretdb")
        # A SIGKILLed writer leaves the collection's write lock behind: the
        # others' writes wait (and after lock_timeout_ms fail 503) until its
        # lease runs out, 30 s by default; shortened so the run goes on writing.
        env = {"RAGD_STORE_BACKEND": "mongodb",
               "RAGD_MONGODB_URI": f"mongodb://127.0.0.1:{ferret.port}/ragd_cluster",
               "RAGD_STORE_MONGODB_LOCK_LEASE_MS": "3000"}
        return env, lambda i: tmp_path / f"data{i}", ferret.stop
    raise AssertionError(f"unknown store {kind}")


@pytest.fixture
def cluster(ragd_factory, tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    env, data_dir, stop_store = store_for(STORE, tmp_path)
    args = ["--set", "models.generator=", "--set",
            f"replication.redis_url=redis://127.0.0.1:{redis.port}"]
    nodes = [ragd_factory(extra_args=args, data_dir=data_dir(i), env=env)
             for i in range(N_INSTANCES)]
    lb = start_lb(tmp_path / "nginx", [n.port for n in nodes])
    yield nodes, lb
    lb.stop()
    for n in nodes:
        n.stop(check=False)
    stop_store()
    redis.stop()


def post(port, path, body, timeout=30):
    try:
        return http_request("127.0.0.1", port, "POST", path, body, timeout=timeout)[:2]
    except OSError as e:
        return None, repr(e)


class Load:
    """Searches and ingests through nginx until stopped, counting failures."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.searches = 0
        self.search_failures = []
        self.acked = []          # document ids acknowledged (2xx) through nginx
        self.ingest_failures = []
        self.threads = [threading.Thread(target=self.search) for _ in range(SEARCH_THREADS)]
        self.threads.append(threading.Thread(target=self.ingest))

    def search(self):
        rnd = random.Random()
        while not self.stop.is_set():
            q = " ".join(rnd.sample(WORDS, 2))
            status, body = post(self.port, "/v1/collections/cl/search", {"query": q, "top_k": 5})
            with self.lock:
                self.searches += 1
                if status != 200:
                    self.search_failures.append((status, str(body)[:200]))

    def ingest(self):
        i = 0
        while not self.stop.is_set():
            doc = f"load{i}"
            text = f"Note {doc} about the {WORDS[i % len(WORDS)]} and tok{doc}x."
            status, body = post(self.port, "/v1/collections/cl/documents", {"id": doc, "text": text})
            with self.lock:
                if status in (200, 201):
                    self.acked.append(doc)
                    i += 1
                else:  # the client retries the same id: ingest is an upsert
                    self.ingest_failures.append((status, str(body)[:200]))
            time.sleep(0.02)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def probe_visibility(nodes, down, stop, out):
    """Writes to one live instance, times until a search on another finds it."""
    rnd = random.Random(7)
    while not stop.is_set():
        live = [n for i, n in enumerate(nodes) if i not in down and n.proc is not None]
        if len(live) < 2:
            time.sleep(0.05)
            continue
        w, r = rnd.sample(live, 2)
        token = f"vis{uuid.uuid4().hex[:10]}"
        status, _ = post(w.port, "/v1/collections/cl/documents",
                         {"id": token, "text": f"Probe {token} written on one instance."})
        if status not in (200, 201):
            continue
        t0 = time.monotonic()
        while time.monotonic() - t0 < VISIBILITY_BOUND_S * 2 and not stop.is_set():
            status, body = post(r.port, "/v1/collections/cl/search",
                                {"query": token, "top_k": 1, "mode": "lexical"})
            if status is None:
                break  # the reader was killed meanwhile: no sample
            if status == 200 and body["results"] and body["results"][0]["document_id"] == token:
                out.append(time.monotonic() - t0)
                break
            time.sleep(0.002)
        time.sleep(0.15)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def test_cluster_survives_a_killed_instance(cluster):
    nodes, lb = cluster
    status, body = post(lb.port, "/v1/collections", {"name": "cl"})
    assert status == 201, body
    for i, w in enumerate(WORDS):
        status, body = post(lb.port, "/v1/collections/cl/documents",
                            {"id": f"seed{i}", "text": f"The {w} seen from the trail."})
        assert status in (200, 201), body

    load = Load(lb.port)
    down = set()
    vis, stop_probe = [], threading.Event()
    probe = threading.Thread(target=probe_visibility, args=(nodes, down, stop_probe, vis))
    t0 = time.monotonic()
    load.start()
    probe.start()
    victim = nodes[1]
    try:
        time.sleep(KILL_AT_S)
        down.add(1)
        victim.kill()
        killed_at = time.monotonic() - t0
        time.sleep(RESTART_AT_S - KILL_AT_S)
        restart_t = time.monotonic()
        victim.start(port=victim.port)  # same address nginx knows; returns once /ready is 200
        ready_after = time.monotonic() - restart_t
        down.discard(1)
        time.sleep(max(0.0, RUN_S - (time.monotonic() - t0)))
    finally:
        load.join()
        stop_probe.set()
        probe.join()

    # Every instance, the restarted one included, ends with the same index.
    acked = list(load.acked)
    deadline = time.monotonic() + 10
    while True:
        counts = [n.collection("cl")["vectors"] for n in nodes]
        if len(set(counts)) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(set(counts)) == 1, f"indexes differ after the run: {counts}"
    for n in nodes:
        for doc in acked:
            status, body = n.request("GET", f"/v1/collections/cl/documents/{doc}")
            assert status == 200, (n.port, doc, body)
    for doc in acked[-20:]:
        hits = victim.search("cl", f"tok{doc}x", top_k=1, mode="lexical")
        assert hits and hits[0]["document_id"] == doc, (doc, hits)

    retried = sum(1 for ln in (lb.prefix / "error.log").read_text().splitlines()
                  if "while reading response header from upstream" in ln
                  or "while connecting to upstream" in ln)
    print(f"\ncluster: {load.searches} searches, {len(load.search_failures)} failed as the "
          f"client saw them; {len(acked)} ingests acknowledged, {len(load.ingest_failures)} "
          f"failed and were retried by the client; nginx logged {retried} upstream errors "
          f"(retried on another instance); killed at {killed_at:.1f} s, restarted instance "
          f"ready {ready_after:.2f} s after its start")
    print(f"cross-instance visibility over {len(vis)} writes: p50 {pct(vis, 50) * 1000:.1f} ms, "
          f"p99 {pct(vis, 99) * 1000:.1f} ms, max {max(vis) * 1000:.1f} ms")
    assert load.search_failures == [], load.search_failures[:5]
    assert len(vis) >= 5
    assert pct(vis, 99) < VISIBILITY_BOUND_S
