"""
Collections whose vector index is a Chroma collection ("index": {"type":
"chroma"}), against a real `chroma run` server: what ragd keeps there, what
a restart re-uses, and what clients see while Chroma is down or hung
(a 503 within the configured timeout, never a crash or a hang) and after it
comes back. The search behaviour itself is covered on both backends by
test_search_modes.py, test_filters.py and test_api.py.
"""
import time

import pytest

TIMEOUT_MS = 1500
DOCS = {
    "volcano": "Volcanoes erupt when magma rises through the crust and lava pours out.",
    "bread": "Sourdough bread rises slowly because wild yeast ferments the dough.",
    "chess": "In chess the Sicilian defence answers the king's pawn opening.",
}
CHROMA_INDEX = {"type": "chroma"}


def database_of(srv):
    """The Chroma database srv was started with (ChromaServer.ragd_args)."""
    return [a.split("=", 1)[1] for a in srv.extra_args if a.startswith("chroma.database=")][0]


def chroma_collection(chroma, srv, name):
    """Chroma's record of ragd collection `name` of server srv, or None."""
    status, body = chroma.api(
        "GET", f"/api/v2/tenants/ragd_e2e/databases/{database_of(srv)}/collections")
    assert status == 200, body
    found = [c for c in body if c["name"].startswith(f"ragd-{name}-")]
    return found[0] if found else None


def chroma_call(chroma, srv, coll, method, op, body=None):
    status, res = chroma.api(
        method, f"/api/v2/tenants/ragd_e2e/databases/{database_of(srv)}/collections/"
        f"{coll['id']}/{op}", body)
    assert status == 200, res
    return res


def search(srv, query, mode="dense", coll="c", expect=200, top_k=3):
    """Searches past the result cache: these tests are about what Chroma
    answers (a cached result stays valid while Chroma is down, and would be
    served)."""
    status, body = srv.request("POST", f"/v1/collections/{coll}/search",
                               {"query": query, "top_k": top_k, "mode": mode, "cache": False})
    assert status == expect, (status, body)
    return body["results"] if expect == 200 else body


def fill(srv, coll="c"):
    srv.create_collection(coll, index=CHROMA_INDEX)
    for doc_id, text in DOCS.items():
        srv.add_doc(coll, text, doc_id)


def test_collection_lives_in_chroma(ragd_factory, chroma):
    srv = ragd_factory(extra_args=chroma.ragd_args())
    info = srv.create_collection("c", index=CHROMA_INDEX)
    assert info["index"]["type"] == "chroma", info
    for doc_id, text in DOCS.items():
        srv.add_doc("c", text, doc_id)
    assert srv.collection("c")["vectors"] == 3
    coll = chroma_collection(chroma, srv, "c")
    assert coll is not None
    assert coll["configuration_json"]["hnsw"]["space"] == "ip"
    assert coll["configuration_json"]["embedding_function"] is None  # ragd embeds, not Chroma
    assert chroma_call(chroma, srv, coll, "GET", "count") == 3
    hits = search(srv, "molten rock from a mountain")
    assert hits[0]["document_id"] == "volcano"
    assert 0 < hits[0]["score"] <= 1.0 + 1e-5

    # A delete reaches Chroma, a replace too.
    assert srv.request("DELETE", "/v1/collections/c/documents/chess")[0] == 200
    srv.add_doc("c", "Now about gardening and tomatoes.", "bread")
    assert chroma_call(chroma, srv, coll, "GET", "count") == 2
    assert [h["document_id"] for h in search(srv, "tomato plants")][:1] == ["bread"]

    # A clean restart re-uses the Chroma collection (same id: nothing re-uploaded).
    srv.restart()
    assert chroma_collection(chroma, srv, "c")["id"] == coll["id"]
    assert search(srv, "molten rock from a mountain")[0]["document_id"] == "volcano"

    # A Chroma collection that lost its records is noticed and rebuilt from the store.
    srv.stop()
    chroma_call(chroma, srv, coll, "POST", "delete", {"ids": [str(i) for i in range(1, 100)]})
    srv.start()
    rebuilt = chroma_collection(chroma, srv, "c")
    assert rebuilt["id"] != coll["id"]
    assert chroma_call(chroma, srv, rebuilt, "GET", "count") == 2
    assert search(srv, "molten rock from a mountain")[0]["document_id"] == "volcano"

    # Deleting the ragd collection deletes the Chroma one.
    assert srv.request("DELETE", "/v1/collections/c")[0] == 200
    assert chroma_collection(chroma, srv, "c") is None


def test_same_results_as_flat(ragd_factory, chroma, topics):
    """Both backends rank the 50 topics the same for every paraphrased query,
    with scores equal to float precision."""
    srv = ragd_factory(extra_args=chroma.ragd_args())
    srv.create_collection("f")
    srv.create_collection("k", index=CHROMA_INDEX)
    for d in topics:
        srv.add_doc("f", d["text"], d["id"])
        srv.add_doc("k", d["text"], d["id"])
    for d in topics[:20]:
        a = search(srv, d["query"], coll="f", top_k=10)
        b = search(srv, d["query"], coll="k", top_k=10)
        assert [h["document_id"] for h in a] == [h["document_id"] for h in b], d["query"]
        for x, y in zip(a, b):
            assert y["score"] == pytest.approx(x["score"], abs=1e-5)


def test_down_or_hung_chroma_gives_503_and_recovers(ragd_factory, chroma_own):
    chroma = chroma_own
    srv = ragd_factory(extra_args=chroma.ragd_args(timeout_ms=TIMEOUT_MS))
    fill(srv)
    assert search(srv, "molten rock")[0]["document_id"] == "volcano"

    # Hung: the kernel accepts, nobody answers. Bounded by chroma.timeout_ms.
    chroma.pause()
    try:
        t0 = time.monotonic()
        body = search(srv, "molten rock", expect=503)
        assert time.monotonic() - t0 < TIMEOUT_MS / 1000 + 5
        assert body["error"]["code"] == "unavailable", body
        assert "Chroma" in body["error"]["message"], body
        # Lexical search does not need Chroma; the server stays healthy.
        assert search(srv, "sourdough", mode="lexical")[0]["document_id"] == "bread"
        assert srv.request("GET", "/health")[0] == 200
    finally:
        chroma.resume()
    assert search(srv, "molten rock")[0]["document_id"] == "volcano"

    # Down: refused at once. Writes are stored and reach Chroma once it is back.
    chroma.stop()
    body = search(srv, "molten rock", expect=503)
    assert body["error"]["code"] == "unavailable", body
    srv.add_doc("c", "The zyxquark protocol handshake uses three messages.", "quark")
    assert srv.request("DELETE", "/v1/collections/c/documents/chess")[0] == 200
    status, body = srv.request("POST", "/v1/collections", {"name": "new", "index": CHROMA_INDEX})
    assert status == 503 and body["error"]["code"] == "unavailable", body
    assert srv.request("GET", "/v1/collections/new")[0] == 404  # nothing was created

    # ragd restarts while Chroma is down: it starts, and the collection answers 503.
    srv.restart()
    search(srv, "molten rock", expect=503)

    chroma.start()
    deadline = time.monotonic() + 30
    while True:
        status, body = srv.request("POST", "/v1/collections/c/search",
                                   {"query": "zyxquark protocol handshake", "top_k": 5})
        if status == 200 and body["results"] and body["results"][0]["document_id"] == "quark":
            break
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.2)
    ids = {h["document_id"] for h in search(srv, "anything", top_k=10)}
    assert ids == {"volcano", "bread", "quark"}, ids


def test_index_type_is_validated(ragd_factory, chroma):
    srv = ragd_factory(extra_args=chroma.ragd_args())
    status, body = srv.request("POST", "/v1/collections",
                               {"name": "x", "index": {"type": "chromadb"}})
    assert status == 400 and body["error"]["field"] == "index.type", body
    assert "chroma" in body["error"]["message"], body
    status, body = srv.request("POST", "/v1/collections",
                               {"name": "x", "index": {"type": "chroma", "ef_search": 0}})
    assert status == 400 and body["error"]["field"] == "index.ef_search", body
    info = srv.create_collection("x", index={"type": "chroma", "ef_search": 128})
    assert info["index"] == {"type": "chroma", "m": 16, "ef_construction": 200,
                             "ef_search": 128}, info
    srv.restart()
    assert srv.collection("x")["index"]["ef_search"] == 128
