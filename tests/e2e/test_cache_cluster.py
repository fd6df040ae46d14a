"""
ragd's Redis Cluster client against a real 6-node cluster (3 masters, 3
replicas, Debian's redis 7) made here with `redis-cli --cluster create`:

- one seed is enough: the slot map comes from CLUSTER SLOTS, and keys
  spread over the masters by CRC16 slot;
- ASK: with every slot of one master migrating, new keys are written to and
  read from the importing node (ASKING + command), no bypass;
- MOVED: after `redis-cli --cluster reshard`, cached entries are still hits
  (ragd follows MOVED and refreshes its map), no bypass;
- failover: a master SIGKILLed, ragd keeps answering every search (200,
  the cache bypassed while the slot has no master), and once the replica is
  promoted the cache works again by itself.
"""
import subprocess
import time

import pytest

from redis_servers import RedisCluster, cli
from test_cache import DOCS, TIMEOUT, fill, metric, search


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = RedisCluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    c.stop()


def cluster_args(cluster, seeds=None):
    return ["--set", "cache.backend=redis-cluster",
            "--set", f"cache.redis.url={seeds or cluster.seeds}", *TIMEOUT]


def dbsize(port):
    return int(cli(port, "DBSIZE"))


def warm(srv, coll, queries):
    for q in queries:
        st, _, xc = search(srv, coll, q)
        assert (st, xc) == (200, "MISS"), q
        st, _, xc = search(srv, coll, q)
        assert (st, xc) == (200, "HIT"), q


def master_ids(cluster):
    return {r["port"]: r["id"] for r in cluster.nodes_table()
            if "master" in r["flags"] and "fail" not in r["flags"] and r["slots"]}


def slots_of(cluster, port):
    """The slot numbers a master serves."""
    row = next(r for r in cluster.nodes_table() if r["port"] == port)
    out = []
    for rng in row["slots"]:
        if rng.startswith("["):
            continue  # a migration marker
        lo, _, hi = rng.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def test_one_seed_spreads_over_masters(ragd_factory, cluster):
    first = cluster.masters()[0]
    srv = ragd_factory(extra_args=cluster_args(cluster, f"redis://127.0.0.1:{first}"))
    fill(srv, "spread")
    warm(srv, "spread", [f"question number {i} about mountains" for i in range(30)])
    with_keys = [p for p in cluster.masters() if dbsize(p) > 0]
    assert len(with_keys) >= 2, "keys should spread over the masters by slot"
    assert metric(srv, "ragd_cache_up", backend="redis-cluster") == 1
    assert metric(srv, "ragd_cache_bypass_total", cache="search", reason="unavailable") == 0


def setslots(port, lines):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)],
                       input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_ask_during_migration(ragd_factory, cluster):
    srv = ragd_factory(extra_args=cluster_args(cluster))
    fill(srv, "ask")
    ids = master_ids(cluster)
    src, dst = sorted(ids)[:2]
    slots = slots_of(cluster, src)
    setslots(dst, [f"CLUSTER SETSLOT {s} IMPORTING {ids[src]}" for s in slots])
    setslots(src, [f"CLUSTER SETSLOT {s} MIGRATING {ids[dst]}" for s in slots])
    try:
        before = dbsize(src)
        warm(srv, "ask", [f"a question asked during migration {i}" for i in range(20)])
        # New keys in src's slots went to dst by ASK; src got none.
        assert dbsize(src) == before
        assert metric(srv, "ragd_cache_bypass_total", cache="search",
                      reason="unavailable") == 0
    finally:
        setslots(src, [f"CLUSTER SETSLOT {s} STABLE" for s in slots])
        setslots(dst, [f"CLUSTER SETSLOT {s} STABLE" for s in slots])


def test_moved_after_reshard(ragd_factory, cluster):
    srv = ragd_factory(extra_args=cluster_args(cluster))
    fill(srv, "moved")
    queries = [f"which mountain is highest, asked {i} times" for i in range(30)]
    warm(srv, "moved", queries)
    ids = master_ids(cluster)
    src, dst = sorted(ids)[1:3]
    p = subprocess.run(["redis-cli", "--cluster", "reshard", f"127.0.0.1:{src}",
                        "--cluster-from", ids[src], "--cluster-to", ids[dst],
                        "--cluster-slots", "3000", "--cluster-yes"],
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stdout.decode()[-2000:] + p.stderr.decode()[-2000:]
    cluster.wait_ok()
    for q in queries:  # the entries moved with their slots: still hits, via MOVED
        st, _, xc = search(srv, "moved", q)
        assert (st, xc) == (200, "HIT"), q
    assert metric(srv, "ragd_cache_bypass_total", cache="search", reason="unavailable") == 0


def test_failover(ragd_factory, cluster):
    srv = ragd_factory(extra_args=cluster_args(cluster))
    fill(srv, "failover")
    warm(srv, "failover", [f"before the failover {i}" for i in range(20)])
    victim = max(cluster.masters(), key=dbsize)
    cluster.node(victim).kill()

    answered = 0
    deadline = time.monotonic() + 60
    promoted = False
    while time.monotonic() < deadline and not promoted:
        for i in range(5):
            st, body, xc = search(srv, "failover", f"during the failover {answered} {i}")
            assert st == 200, body
            assert body["results"]
            answered += 1
        promoted = len(cluster.masters()) == 3 and victim not in cluster.masters()
    assert promoted, "the replica was never promoted"
    cluster.wait_ok()

    # The cache comes back once ragd's map names the new master: every new
    # query misses once, then hits.
    deadline = time.monotonic() + 20
    while True:
        queries = [f"after the failover {time.monotonic()} {i}" for i in range(10)]
        results = []
        for q in queries:
            search(srv, "failover", q)
            results.append(search(srv, "failover", q)[2])
        if all(x == "HIT" for x in results):
            break
        assert time.monotonic() < deadline, f"the cache never came back: {results}"
        time.sleep(0.5)
    assert metric(srv, "ragd_cache_up", backend="redis-cluster") == 1
    assert len(DOCS) == 4
