"""
Sharding across instances: 4 real ragd processes on loopback sharing one
store (the SQLite data dir), 2 shards x 2 replicas, against one unsharded
instance over the same corpus.

- Each sharded instance's vector index holds only its shard's documents,
  and the two shards together hold the corpus.
- Every query, on every instance, in every mode (dense, lexical, hybrid
  with weighted and RRF fusion, filtered), returns what the unsharded
  instance returns: same documents in the same order, scores equal within
  float tolerance.
- One instance killed with SIGKILL: queries on the others still return
  full results (its replica answers for its shard). Both holders of a
  shard down: 503 naming the shard, never a silently partial answer.
- The killed instance restarted catches up with writes made while it was
  down.
"""
import json
import time

import pytest

from conftest import RagdServer, free_port, http_request

SHARDS = 2
COLL = "sharded"
MODES = [
    {"mode": "dense"},
    {"mode": "lexical"},
    {"mode": "hybrid", "fusion": "weighted"},
    {"mode": "hybrid", "fusion": "rrf"},
]
SCORE_TOL = 1e-5


class Cluster:
    """The unsharded reference and the 4 sharded instances (holds: 0, 0, 1, 1)."""

    def __init__(self, tmp_path):
        self.ref_port = free_port()
        self.ports = [free_port() for _ in range(4)]
        self.holds = [0, 0, 1, 1]
        peers = " ".join(f"http://127.0.0.1:{p}={h}" for p, h in zip(self.ports, self.holds))
        shared = tmp_path / "shared-data"
        self.ref = RagdServer(tmp_path / "ref-data", tmp_path, ["--set", "cache.backend=none"])
        self.nodes = []
        for i, (port, hold) in enumerate(zip(self.ports, self.holds)):
            args = ["--set", "cache.backend=none",
                    # Replicas share one data dir here, so one snapshot file:
                    # they rebuild from the store at start instead.
                    "--set", "index.snapshot=false",
                    "--set", "index.follow_interval_ms=100",
                    "--set", f"sharding.shards={SHARDS}",
                    "--set", f"sharding.peers={peers}",
                    "--set", "sharding.timeout_ms=3000",
                    "--set", "sharding.backoff_ms=60000"]
            env = None
            if i % 2 == 0:
                args += ["--set", f"sharding.holds={hold}"]
            else:
                env = {"RAGD_SHARD_ORDINAL": str(2 + hold)}  # ordinal % shards = hold
            self.nodes.append(RagdServer(shared, tmp_path / f"node{i}", args, env=env))
            (tmp_path / f"node{i}").mkdir()

    def start(self):
        self.ref.start(port=self.ref_port)
        for node, port in zip(self.nodes, self.ports):
            node.start(port=port)

    def close(self):
        problems = []
        for srv in [self.ref, *self.nodes]:
            try:
                srv.stop(check=False)
            except Exception as e:  # noqa: BLE001 - keep stopping the rest
                problems.append(repr(e))
            problems.extend(srv.problems)
        if problems:
            pytest.fail("ragd server problems:\n" + "\n\n".join(problems), pytrace=False)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.close()


def post(srv, path, body):
    return http_request("127.0.0.1", srv.port, "POST", path, body)[:2]


def search(srv, query, top_k=5, **kw):
    status, body = post(srv, f"/v1/collections/{COLL}/search",
                        {"query": query, "top_k": top_k, **kw})
    return status, body


def vectors(srv):
    return srv.collection(COLL)["vectors"]


def seq(srv):
    return srv.collection(COLL)["seq"]  # the change-log position its indexes reflect


def settled(nodes):
    """Every node has applied the same (latest) change: their lexical indexes agree."""
    return len({seq(n) for n in nodes}) == 1


def wait_for(pred, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def same_results(got, want, where):
    assert [(h["document_id"], h["ordinal"]) for h in got] == \
        [(h["document_id"], h["ordinal"]) for h in want], where
    for g, w in zip(got, want):
        assert abs(g["score"] - w["score"]) <= SCORE_TOL, (where, g["score"], w["score"])


def check_all(cluster, queries, nodes=None, extra=None):
    """Every query in every mode on every (live) node equals the reference."""
    n_compared = 0
    for q in queries:
        for mode in MODES:
            kw = {**mode, **(extra or {})}
            status, want = search(cluster.ref, q, top_k=5, **kw)
            assert status == 200, want
            for i, node in enumerate(nodes if nodes is not None else cluster.nodes):
                status, got = search(node, q, top_k=5, **kw)
                assert status == 200, (i, q, kw, got)
                same_results(got["results"], want["results"], (i, q, kw))
                n_compared += 1
    return n_compared


def ingest(cluster, topics):
    """The corpus into the reference, and into the cluster through every node in turn."""
    for srv in [cluster.ref, cluster.nodes[0]]:
        srv.create_collection(COLL)
    for i, doc in enumerate(topics):
        meta = {"group": i % 3}
        cluster.ref.add_doc(COLL, doc["text"], doc_id=doc["id"], metadata=meta)
        cluster.nodes[i % 4].add_doc(COLL, doc["text"], doc_id=doc["id"], metadata=meta)
    total = vectors(cluster.ref)
    wait_for(lambda: vectors(cluster.nodes[0]) + vectors(cluster.nodes[2]) == total
             and vectors(cluster.nodes[1]) == vectors(cluster.nodes[0])
             and vectors(cluster.nodes[3]) == vectors(cluster.nodes[2])
             and settled(cluster.nodes),
             "every node to index its shard")
    return total


def test_shards_split_the_corpus_and_answer_like_one_instance(cluster, topics):
    total = ingest(cluster, topics)
    n0, n1 = vectors(cluster.nodes[0]), vectors(cluster.nodes[2])
    assert n0 > 0 and n1 > 0 and n0 + n1 == total  # each holds a part, together all
    queries = [d["query"] for d in topics[:12]]
    assert check_all(cluster, queries) == 12 * len(MODES) * 4
    # Filtered, and a top_k deeper than one shard's share.
    check_all(cluster, queries[:4], extra={"filter": {"group": 1}})
    status, want = search(cluster.ref, topics[0]["query"], top_k=40, mode="dense")
    status, got = search(cluster.nodes[3], topics[0]["query"], top_k=40, mode="dense")
    assert status == 200 and len(got["results"]) == 40
    same_results(got["results"], want["results"], "top_k 40")
    # A delete through one node is seen by every shard holder.
    gone = topics[5]["id"]
    for srv in (cluster.ref, cluster.nodes[1]):
        status, _ = srv.request("DELETE", f"/v1/collections/{COLL}/documents/{gone}")
        assert status in (200, 204)
    wait_for(lambda: vectors(cluster.nodes[0]) + vectors(cluster.nodes[2]) == total - 1
             and vectors(cluster.nodes[1]) + vectors(cluster.nodes[3]) == total - 1
             and settled(cluster.nodes),
             "the delete to reach every node")
    # BM25's statistics count a deleted chunk until the follower purges it
    # (lexical.h), on each instance at its own pace: equal once all have.
    def equal_now():
        try:
            check_all(cluster, [topics[5]["query"]])
            return True
        except AssertionError:
            return False
    wait_for(equal_now, "lexical statistics to agree after the purge")


def test_internal_endpoint_searches_only_local_shards(cluster, topics):
    ingest(cluster, topics)
    status, emb = cluster.ref.request("POST", "/v1/embeddings",
                                      {"input": topics[0]["query"], "model": "all-MiniLM-L6-v2"})
    assert status == 200, emb
    vec = emb["data"][0]["embedding"]
    answers = []
    for node in (cluster.nodes[0], cluster.nodes[2]):
        status, body = post(node, "/v1/internal/shard-search",
                            {"collection": COLL, "vector": vec, "k": 100})
        assert status == 200, body
        answers.append(body)
    assert answers[0]["shards"] == [0] and answers[1]["shards"] == [1]
    assert len(answers[0]["ids"]) == vectors(cluster.nodes[0])  # its shard only
    assert not set(answers[0]["ids"]) & set(answers[1]["ids"])
    status, body = post(cluster.nodes[0], "/v1/internal/shard-search",
                        {"collection": COLL, "vector": vec[:10], "k": 5})
    assert status == 400 and body["error"]["field"] == "vector"
    status, body = post(cluster.nodes[0], "/v1/internal/shard-search",
                        {"collection": COLL, "vector": vec, "k": 0})
    assert status == 400 and body["error"]["field"] == "k"


def test_killed_replica_queries_stay_complete_and_it_catches_up(cluster, topics):
    ingest(cluster, topics[:40])
    queries = [d["query"] for d in topics[:8]]
    victim = cluster.nodes[2]  # holds shard 1, like nodes[3]
    victim.kill()
    live = [cluster.nodes[0], cluster.nodes[1], cluster.nodes[3]]
    check_all(cluster, queries, nodes=live)
    # Writes while it is down, through a live node.
    for i, doc in enumerate(topics[40:]):
        meta = {"group": (40 + i) % 3}
        cluster.ref.add_doc(COLL, doc["text"], doc_id=doc["id"], metadata=meta)
        cluster.nodes[0].add_doc(COLL, doc["text"], doc_id=doc["id"], metadata=meta)
    total = vectors(cluster.ref)
    wait_for(lambda: vectors(cluster.nodes[0]) + vectors(cluster.nodes[3]) == total
             and settled(live),
             "the live nodes to index the new documents")
    check_all(cluster, [d["query"] for d in topics[40:46]], nodes=live)

    # Both holders of shard 1 down: a 503 naming the shard, not a partial answer.
    cluster.nodes[3].kill()
    status, body = search(cluster.nodes[0], queries[0], mode="dense")
    assert status == 503, body
    assert "shard 1" in body["error"]["message"]
    status, body = search(cluster.nodes[0], queries[0], mode="lexical")
    assert status == 200  # lexical needs no other instance (docs/sharding.md)

    # Back on the same addresses: they rebuild from the store and catch up.
    victim.start(port=cluster.ports[2])
    cluster.nodes[3].start(port=cluster.ports[3])
    wait_for(lambda: vectors(victim) + vectors(cluster.nodes[0]) == total
             and vectors(cluster.nodes[3]) == vectors(victim) and settled(cluster.nodes),
             "the restarted nodes to catch up")
    check_all(cluster, queries[:4] + [d["query"] for d in topics[40:44]])
