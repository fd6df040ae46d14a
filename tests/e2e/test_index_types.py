"""
Per-collection vector index choice: POST /v1/collections {"index": {...}}.

Collections made with each index type (flat, flat_int8, hnsw, faiss with a
graph, with a trained IVF and with 4 IVF shards) over the 50-topic corpus return the same
top results as flat, with filters; deleted documents disappear from
results; a restart reloads each index from its snapshot, and a corrupt
snapshot is rebuilt from the store. Bad specs are 400s naming the field
and create nothing.
"""
import pytest

TYPES = {
    "flat": {"type": "flat"},
    "int8": {"type": "flat_int8", "rescore": 50},
    "hnsw": {"type": "hnsw", "m": 8, "ef_construction": 100, "ef_search": 32},
    "fhnsw": {"type": "faiss", "factory": "HNSW16"},
    # IVF1 trains at 39 vectors, so the 50 topics exercise the trained path.
    "fivf": {"type": "faiss", "factory": "IVF1,Flat", "nprobe": 1},
    # The design's IndexShards: 4 trained IVF shards searched in parallel.
    "fshards": {"type": "faiss", "factory": "IVF1,Flat", "nprobe": 1, "shards": 4},
}


@pytest.fixture(scope="module")
def srv(ragd_module_factory, topics):
    s = ragd_module_factory()
    for name, spec in TYPES.items():
        body = s.create_collection(name, index=spec)
        assert body["index"]["type"] == spec["type"]
        for n, d in enumerate(topics):
            s.add_doc(name, d["text"], d["id"], {"n": n, "even": n % 2 == 0})
    return s


def search(srv, coll, query, top_k=5, **kw):
    """Dense unless told otherwise: these tests compare vector indexes."""
    status, body = srv.request("POST", f"/v1/collections/{coll}/search",
                               {"query": query, "top_k": top_k, "mode": "dense", **kw})
    assert status == 200, body
    return [(h["document_id"], round(h["score"], 4)) for h in body["results"]]


@pytest.mark.parametrize("coll", [c for c in TYPES if c != "flat"])
def test_same_top_results_as_flat(srv, topics, coll):
    for d in topics[:25]:
        assert search(srv, coll, d["query"]) == search(srv, "flat", d["query"]), d["query"]
        flt = {"even": True}
        assert search(srv, coll, d["query"], filter=flt) == \
            search(srv, "flat", d["query"], filter=flt)


def test_get_returns_the_index(srv):
    status, body = srv.request("GET", "/v1/collections/hnsw")
    assert status == 200
    assert body["index"] == {"type": "hnsw", "m": 8, "ef_construction": 100, "ef_search": 32}
    status, body = srv.request("GET", "/v1/collections/fivf")
    assert body["index"]["factory"] == "IVF1,Flat" and body["index"]["nprobe"] == 1
    status, body = srv.request("GET", "/v1/collections/fshards")
    assert body["index"]["shards"] == 4 and body["vectors"] > 0
    status, body = srv.request("GET", "/v1/collections")
    kinds = {c["name"]: c["index"]["type"] for c in body["collections"]}
    assert kinds["int8"] == "flat_int8" and kinds["flat"] == "flat"


@pytest.mark.parametrize("spec, field", [
    ({"type": "annoy"}, "index.type"),
    ({"type": 3}, "index.type"),
    ({"type": "hnsw", "m": 1}, "index.m"),
    ({"type": "hnsw", "m": 100000}, "index.m"),
    ({"type": "hnsw", "ef_search": 0}, "index.ef_search"),
    ({"type": "hnsw", "ef_construction": "big"}, "index.ef_construction"),
    ({"type": "hnsw", "colour": 1}, "index.colour"),
    ({"type": "flat_int8", "rescore": -1}, "index.rescore"),
    ({"type": "faiss", "factory": "IVF1024,QQ9"}, "index.factory"),
    ({"type": "faiss", "factory": "IVF8,PQ7"}, "index.factory"),
    ({"type": "faiss", "factory": ""}, "index.factory"),
    ({"type": "faiss", "nprobe": 0}, "index.nprobe"),
    ({"type": "faiss", "shards": 0}, "index.shards"),
    ({"type": "faiss", "shards": 17}, "index.shards"),
])
def test_bad_index_is_400_and_creates_nothing(srv, spec, field):
    status, body = srv.request("POST", "/v1/collections", {"name": "bad", "index": spec})
    assert status == 400, body
    assert body["error"]["field"] == field, body
    status, _ = srv.request("GET", "/v1/collections/bad")
    assert status == 404


def test_index_must_be_an_object(srv):
    status, body = srv.request("POST", "/v1/collections", {"name": "bad", "index": "hnsw"})
    assert status == 400 and body["error"]["field"] == "index", body


def test_deletes_disappear_and_restart_reloads(srv, topics):
    gone = topics[0]
    for coll in TYPES:
        status, _ = srv.request("DELETE", f"/v1/collections/{coll}/documents/{gone['id']}")
        assert status == 200
        assert gone["id"] not in [d for d, _ in search(srv, coll, gone["query"], top_k=20)]
    before = {c: [search(srv, c, d["query"]) for d in topics[:10]] for c in TYPES}
    srv.restart()
    snaps = sorted(p.name for p in (srv.data_dir / "index").glob("*.vidx"))
    assert len(snaps) == len(TYPES), snaps
    for c in TYPES:
        assert [search(srv, c, d["query"]) for d in topics[:10]] == before[c], c
        status, body = srv.request("GET", f"/v1/collections/{c}")
        assert body["vectors"] == len(topics) - 1 and body["index"]["type"] == TYPES[c]["type"]
    log = srv.stderr_path.read_text(errors="replace")
    assert "unusable" not in log


def test_corrupt_snapshot_is_rebuilt(srv, topics):
    srv.stop()
    for p in (srv.data_dir / "index").glob("*.vidx"):
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x55
        p.write_bytes(bytes(data))
    srv.start()
    for c in TYPES:
        got = search(srv, c, topics[5]["query"])
        assert got == search(srv, "flat", topics[5]["query"])
        assert got[0][0] == topics[5]["id"]
    assert "unusable" in srv.stderr_path.read_text(errors="replace")
