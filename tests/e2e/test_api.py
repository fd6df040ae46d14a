"""
End-to-end tests of the ragd HTTP API: health/ready, collections, documents,
semantic search quality on a 50-topic corpus, deletes, replaces, and
persistence across restarts (from the index snapshot and rebuilt from the
store).
"""
import json
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import (RAGD_BIN, RAGD_MODEL, free_port, http_request, ragd_env, run_cli,
                      sanitizer_findings)

COLL = "topics"
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MIN_TOP1_RATE = 0.90
SCORE_TOL = 1e-6


def assert_error(status, body, want_status, field="__any__"):
    assert status == want_status, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "field"}, err
    assert isinstance(err["code"], str) and err["code"], err
    assert isinstance(err["message"], str) and err["message"], err
    if field != "__any__":
        assert err["field"] == field, err


@pytest.fixture(scope="module")
def corpus(ragd_backend, topics):
    """The shared server with collection `topics` holding the 50 documents
    (id = topic id, metadata = {"topic": id, "n": index}). Tests must not
    modify this collection."""
    srv = ragd_backend
    info = srv.create_collection(COLL)
    assert info["vectors"] == 0 and info["seq"] == 0
    t0 = time.monotonic()
    last_seq = 0
    for n, d in enumerate(topics):
        status, body = srv.request("POST", f"/v1/collections/{COLL}/documents",
                                    {"id": d["id"], "text": d["text"],
                                     "metadata": {"topic": d["id"], "n": n}})
        assert status == 201, (status, body)
        assert body["id"] == d["id"] and body["collection"] == COLL, body
        assert body["replaced"] is False, body
        assert body["chunks"] == 1, body  # every document is shorter than a chunk
        assert body["seq"] > last_seq, body
        last_seq = body["seq"]
    print(f"\ningested {len(topics)} documents in {time.monotonic() - t0:.2f}s")
    info = srv.collection(COLL)
    assert info["vectors"] == len(topics), info
    assert info["seq"] == last_seq, info
    return srv


def search_all(srv, topics, top_k=5):
    return {d["id"]: srv.search(COLL, d["query"], top_k=top_k) for d in topics}


def assert_same_results(before, after):
    assert before.keys() == after.keys()
    for q in before:
        b, a = before[q], after[q]
        assert [h["document_id"] for h in a] == [h["document_id"] for h in b], q
        assert [h["chunk_id"] for h in a] == [h["chunk_id"] for h in b], q
        assert [h["text"] for h in a] == [h["text"] for h in b], q
        for hb, ha in zip(b, a):
            assert abs(ha["score"] - hb["score"]) <= SCORE_TOL, (q, hb, ha)


# -- health and readiness -----------------------------------------------------

def test_health(ragd):
    status, body = ragd.request("GET", "/health")
    assert status == 200, body
    assert body["status"] == "healthy"
    assert body["instance"] == socket.gethostname()
    assert isinstance(body["version"], str) and body["version"]
    version_out = run_cli("version").stdout
    assert body["version"] in version_out, (body["version"], version_out)


def test_ready(ragd):
    status, body = ragd.request("GET", "/ready")
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["instance"] == socket.gethostname()


def test_ready_is_monotonic_during_startup(tmp_path):
    """From the first answer on, /ready is 503 "starting" until it turns 200
    "ready" for good; /health answers 200 throughout."""
    port = free_port()
    log_path = tmp_path / "startup.stderr"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([RAGD_BIN, "serve", "--data-dir", str(tmp_path / "data"),
                                 "--port", str(port), "--host", "127.0.0.1",
                                 "--model", RAGD_MODEL],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=ragd_env())
        try:
            seen = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    st, body, _ = http_request("127.0.0.1", port, "GET", "/ready", timeout=5)
                except OSError:
                    time.sleep(0.005)
                    continue
                seen.append((st, body.get("status")))
                if st == 200:
                    break
            assert seen and seen[-1] == (200, "ready"), seen
            assert all(s == (503, "starting") for s in seen[:-1]), seen
            for _ in range(5):
                st, body, _ = http_request("127.0.0.1", port, "GET", "/ready")
                assert (st, body["status"]) == (200, "ready")
                st, body, _ = http_request("127.0.0.1", port, "GET", "/health")
                assert (st, body["status"]) == (200, "healthy")
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
    text = log_path.read_text(errors="replace")
    assert rc == 0, text[-4000:]
    assert not sanitizer_findings(text), text[-6000:]


def test_logs_are_json_lines(ragd):
    ragd.request("GET", "/health")
    lines = [l for l in ragd.stderr_text().splitlines() if l.strip()]
    assert lines, "no log output"
    for line in lines:
        obj = json.loads(line)  # every line is a JSON object
        assert isinstance(obj, dict) and "msg" in obj and "level" in obj, line


# -- collections -------------------------------------------------------------

def test_collections_crud(ragd):
    status, body = ragd.request("POST", "/v1/collections",
                                {"name": "crud-a", "chunk_size": 64, "chunk_overlap": 8})
    assert status == 201, body
    assert body["name"] == "crud-a"
    assert body["embedding_model"] == "all-MiniLM-L6-v2"
    assert body["dimensions"] == 384
    assert body["chunk_size"] == 64 and body["chunk_overlap"] == 8
    assert body["seq"] == 0 and body["vectors"] == 0
    assert isinstance(body["created_at"], int) and body["created_at"] > 0
    assert isinstance(body["index_bytes"], int) and body["index_bytes"] >= 0
    created = body

    # defaults, and embedding_model naming the loaded model is accepted
    status, body = ragd.request("POST", "/v1/collections",
                                {"name": "crud_b.2", "embedding_model": "all-MiniLM-L6-v2"})
    assert status == 201, body
    assert body["chunk_size"] > body["chunk_overlap"] >= 0

    status, body = ragd.request("GET", "/v1/collections/crud-a")
    assert status == 200, body
    for k in ("name", "embedding_model", "dimensions", "chunk_size", "chunk_overlap",
              "created_at", "seq", "vectors"):
        assert body[k] == created[k], k

    status, body = ragd.request("GET", "/v1/collections")
    assert status == 200, body
    names = [c["name"] for c in body["collections"]]
    assert "crud-a" in names and "crud_b.2" in names
    assert len(names) == len(set(names))

    ragd.add_doc("crud-a", "A short note about lighthouses guiding ships at night.", "note1")
    assert ragd.collection("crud-a")["vectors"] == 1

    status, body = ragd.request("DELETE", "/v1/collections/crud-a")
    assert status == 200, body
    assert body == {"name": "crud-a", "deleted": True}

    status, body = ragd.request("GET", "/v1/collections/crud-a")
    assert_error(status, body, 404)
    status, body = ragd.request("GET", "/v1/collections/crud-a/documents/note1")
    assert_error(status, body, 404)
    status, body = ragd.request("POST", "/v1/collections/crud-a/search", {"query": "ships"})
    assert_error(status, body, 404)
    status, body = ragd.request("DELETE", "/v1/collections/crud-a")
    assert_error(status, body, 404)
    status, body = ragd.request("GET", "/v1/collections")
    assert "crud-a" not in [c["name"] for c in body["collections"]]

    # the name is free again, and the new collection starts empty
    status, body = ragd.request("POST", "/v1/collections", {"name": "crud-a"})
    assert status == 201, body
    assert body["vectors"] == 0
    assert ragd.search("crud-a", "lighthouses", top_k=10) == []
    status, body = ragd.request("GET", "/v1/collections/crud-a/documents/note1")
    assert_error(status, body, 404)

    for name in ("crud-a", "crud_b.2"):
        status, body = ragd.request("DELETE", f"/v1/collections/{name}")
        assert status == 200, body


def test_empty_collection_search(ragd_backend):
    srv = ragd_backend
    srv.create_collection("empty1")
    assert srv.search("empty1", "anything at all", top_k=10) == []
    srv.request("DELETE", "/v1/collections/empty1")


# -- documents and search ------------------------------------------------------

def test_paraphrase_top1_rate(corpus, topics):
    hits, misses = 0, []
    for d in topics:
        results = corpus.search(COLL, d["query"], top_k=5)
        assert results, d["query"]
        if results[0]["document_id"] == d["id"]:
            hits += 1
        else:
            misses.append((d["query"], d["id"], [r["document_id"] for r in results[:3]]))
    rate = hits / len(topics)
    print(f"\ntop-1 rate on {len(topics)} paraphrased queries: {rate:.0%} ({hits}/{len(topics)})")
    for m in misses:
        print("  miss:", m)
    assert rate >= MIN_TOP1_RATE, (rate, misses)


def test_search_result_shape(corpus, topics):
    by_id = {d["id"]: (n, d) for n, d in enumerate(topics)}
    status, body = corpus.request("POST", f"/v1/collections/{COLL}/search",
                                  {"query": topics[0]["query"]})
    assert status == 200, body
    assert set(body) == {"results", "timings"}
    assert len(body["results"]) == 5  # default top_k
    assert isinstance(body["timings"], dict)
    for v in body["timings"].values():
        assert isinstance(v, (int, float)) and v >= 0
    for top_k in (1, 3, 50, 1000):
        results = corpus.search(COLL, topics[1]["query"], top_k=top_k)
        assert len(results) == min(top_k, len(topics))
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        assert len({r["document_id"] for r in results}) == len(results)
        for r in results:
            assert set(r) == {"document_id", "chunk_id", "score", "text", "metadata",
                              "ordinal", "start", "end", "page", "section"}, r
            n, d = by_id[r["document_id"]]
            assert r["text"] == d["text"]
            assert r["metadata"] == {"topic": d["id"], "n": n}
            assert r["ordinal"] == 0
            assert r["start"] == 0 and r["end"] == len(d["text"].encode())
            assert isinstance(r["chunk_id"], int)
            assert -1.0 - 1e-5 <= r["score"] <= 1.0 + 1e-5


def test_get_document(corpus, topics):
    d = topics[7]
    status, body = corpus.request("GET", f"/v1/collections/{COLL}/documents/{d['id']}")
    assert status == 200, body
    assert body["id"] == d["id"]
    assert body["text"] == d["text"]
    assert body["metadata"] == {"topic": d["id"], "n": 7}
    assert isinstance(body["content_hash"], str) and body["content_hash"]
    assert body["chunks"] == 1
    assert isinstance(body["created_at"], int) and body["created_at"] > 0
    assert body["updated_at"] >= body["created_at"]

    status, body = corpus.request("GET", f"/v1/collections/{COLL}/documents/no-such-doc")
    assert_error(status, body, 404)


def test_generated_id_and_no_metadata(ragd):
    ragd.create_collection("autoid")
    text = "Kites are flown on windy beaches by holding a long string."
    body = ragd.add_doc("autoid", text)
    assert ID_RE.match(body["id"]), body
    assert body["replaced"] is False and body["chunks"] == 1
    body2 = ragd.add_doc("autoid", text)  # no id: always a new document
    assert body2["id"] != body["id"] and body2["replaced"] is False
    status, doc = ragd.request("GET", f"/v1/collections/autoid/documents/{body['id']}")
    assert status == 200, doc
    assert doc["text"] == text
    assert doc["metadata"] in ({}, None), doc
    assert ragd.collection("autoid")["vectors"] == 2
    ragd.request("DELETE", "/v1/collections/autoid")


def test_unicode_text_round_trip(ragd):
    ragd.create_collection("uni")
    text = "Crème brûlée 東京 Привет 🚀 — naïve façade; \"quoted\" \\ back\\slash\ttab"
    meta = {"lang": "mixed", "emoji": "🍕", "nested": {"a": [1, 2.5, None, True]}}
    ragd.add_doc("uni", text, "u1", meta)
    status, doc = ragd.request("GET", "/v1/collections/uni/documents/u1")
    assert status == 200, doc
    assert doc["text"] == text and doc["metadata"] == meta
    hits = ragd.search("uni", "dessert in Tokyo", top_k=3)
    assert len(hits) == 1 and hits[0]["text"] == text and hits[0]["metadata"] == meta
    assert hits[0]["end"] == len(text.encode())
    ragd.request("DELETE", "/v1/collections/uni")


def test_long_document_is_chunked(ragd, topics):
    """A document longer than a chunk is split; each hit's text is the slice
    [start, end) of the document's UTF-8 bytes, and ordinals are distinct."""
    ragd.create_collection("chunky", chunk_size=32, chunk_overlap=4)
    text = " ".join(d["text"] for d in topics[:8])
    body = ragd.add_doc("chunky", text, "long")
    assert body["chunks"] > 3, body
    assert ragd.collection("chunky")["vectors"] == body["chunks"]
    status, doc = ragd.request("GET", "/v1/collections/chunky/documents/long")
    assert doc["chunks"] == body["chunks"]
    hits = ragd.search("chunky", topics[3]["query"], top_k=1000)
    assert len(hits) == body["chunks"]
    assert sorted(h["ordinal"] for h in hits) == list(range(body["chunks"]))
    raw = text.encode()
    for h in hits:
        assert h["document_id"] == "long"
        assert 0 <= h["start"] < h["end"] <= len(raw), h
        assert raw[h["start"]:h["end"]].decode() == h["text"], h
    spans = sorted((h["start"], h["end"]) for h in hits)
    assert spans[0][0] == 0 and spans[-1][1] == len(raw)
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        # chunks cover the text (overlap allowed); the structured chunker
        # leaves out only the whitespace between sentences
        assert s1 <= e0 or not raw[e0:s1].strip(), "gap between chunks"
    # the best chunk for the jazz query lies within the jazz paragraph
    jazz_start = len((" ".join(d["text"] for d in topics[:3]) + " ").encode())
    jazz_end = jazz_start + len(topics[3]["text"].encode())
    best = ragd.search("chunky", topics[3]["query"], top_k=1)[0]
    assert best["start"] < jazz_end and best["end"] > jazz_start, (best, jazz_start, jazz_end)
    ragd.request("DELETE", "/v1/collections/chunky")


def test_chunks_embedded_in_parallel_match_single_embeddings(ragd, topics):
    """A long document is embedded in slices on several model contexts at
    once; each chunk's vector must equal the one its text gets alone (as a
    query), so searching a chunk's exact text finds that chunk with score 1."""
    ragd.create_collection("sliced", chunk_size=24, chunk_overlap=0)
    text = " ".join(d["text"] for d in topics[:12])
    body = ragd.add_doc("sliced", text, "long")
    assert body["chunks"] >= 8, body
    hits = ragd.search("sliced", topics[0]["query"], top_k=1000)
    for h in hits:
        best = ragd.search("sliced", h["text"], top_k=1, mode="dense")[0]
        assert best["chunk_id"] == h["chunk_id"], (h, best)
        assert best["score"] > 0.9999, best
    ragd.request("DELETE", "/v1/collections/sliced")


def test_delete_document(ragd_backend, topics):
    srv = ragd_backend
    docs = topics[:10]
    srv.create_collection("deltest")
    for d in docs:
        srv.add_doc("deltest", d["text"], d["id"], {"topic": d["id"]})
    victim = docs[2]
    assert srv.search("deltest", victim["query"], top_k=1)[0]["document_id"] == victim["id"]
    seq_before = srv.collection("deltest")["seq"]

    status, body = srv.request("DELETE", f"/v1/collections/deltest/documents/{victim['id']}")
    assert status == 200, body
    assert body == {"id": victim["id"], "deleted": True}

    def check_gone(srv):
        st, b = srv.request("GET", f"/v1/collections/deltest/documents/{victim['id']}")
        assert_error(st, b, 404)
        info = srv.collection("deltest")
        assert info["vectors"] == len(docs) - 1, info
        for d in docs:
            hits = srv.search("deltest", d["query"], top_k=1000)
            ids = [h["document_id"] for h in hits]
            assert victim["id"] not in ids, (d["query"], ids)
            assert victim["text"] not in [h["text"] for h in hits]
            assert len(ids) == len(docs) - 1
        hits = srv.search("deltest", victim["text"], top_k=1000)  # the doc's own text
        assert victim["id"] not in [h["document_id"] for h in hits]

    check_gone(srv)
    assert srv.collection("deltest")["seq"] > seq_before
    st, b = srv.request("DELETE", f"/v1/collections/deltest/documents/{victim['id']}")
    assert_error(st, b, 404)

    # writes after the delete do not bring it back
    srv.add_doc("deltest", "Tulips bloom in Dutch fields every spring.", "tulips")
    srv.request("DELETE", "/v1/collections/deltest/documents/tulips")
    check_gone(srv)

    srv.restart()  # from the snapshot
    check_gone(srv)
    srv.stop()
    shutil.rmtree(srv.data_dir / "index", ignore_errors=True)
    srv.start()  # rebuilt from the store
    check_gone(srv)

    # the id can be used again afterwards: a new document, not a replace
    body = srv.add_doc("deltest", victim["text"], victim["id"])
    assert body["replaced"] is False, body
    assert srv.search("deltest", victim["query"], top_k=1)[0]["document_id"] == victim["id"]
    srv.request("DELETE", "/v1/collections/deltest")


def test_replace_document(ragd_backend, topics):
    srv = ragd_backend
    srv.create_collection("repl")
    old = next(d for d in topics if d["id"] == "volcanoes")
    new = next(d for d in topics if d["id"] == "jazz")
    other = next(d for d in topics if d["id"] == "penguins")
    b1 = srv.add_doc("repl", old["text"], "doc1", {"version": 1, "tag": "old"})
    assert b1["replaced"] is False
    srv.add_doc("repl", other["text"], "doc2")
    status, before = srv.request("GET", "/v1/collections/repl/documents/doc1")
    assert status == 200

    status, b2 = srv.request("POST", "/v1/collections/repl/documents",
                              {"id": "doc1", "text": new["text"], "metadata": {"version": 2}})
    assert status == 200, b2
    assert b2["replaced"] is True and b2["id"] == "doc1" and b2["collection"] == "repl"
    assert b2["seq"] > b1["seq"]

    def check(srv):
        info = srv.collection("repl")
        assert info["vectors"] == 2, info
        for q in (old["query"], new["query"], other["query"], old["text"]):
            hits = srv.search("repl", q, top_k=100)
            assert len(hits) == 2, hits
            texts = [h["text"] for h in hits]
            assert old["text"] not in texts, (q, texts)
            d1 = [h for h in hits if h["document_id"] == "doc1"]
            assert len(d1) == 1 and d1[0]["text"] == new["text"], hits
            assert d1[0]["metadata"] == {"version": 2}
        assert srv.search("repl", new["query"], top_k=1)[0]["document_id"] == "doc1"
        assert srv.search("repl", old["query"], top_k=1)[0]["text"] != old["text"]
        st, doc = srv.request("GET", "/v1/collections/repl/documents/doc1")
        assert st == 200, doc
        assert doc["text"] == new["text"]
        assert doc["metadata"] == {"version": 2}
        assert doc["content_hash"] != before["content_hash"]
        assert doc["updated_at"] >= before["updated_at"]
        assert doc["chunks"] == 1

    check(srv)
    srv.restart()
    check(srv)
    srv.request("DELETE", "/v1/collections/repl")


def test_restart_gives_identical_results(corpus, topics):
    """Results survive a clean restart (index snapshot) and a restart with the
    snapshot dir removed (rebuild from the store): same ids, same scores."""
    info0 = corpus.collection(COLL)
    before = search_all(corpus, topics)

    corpus.restart()
    assert (corpus.data_dir / "index").is_dir(), "no snapshot dir after a clean shutdown"
    assert_same_results(before, search_all(corpus, topics))
    info1 = corpus.collection(COLL)
    assert (info1["vectors"], info1["seq"]) == (info0["vectors"], info0["seq"])

    corpus.stop()
    index_dir = corpus.data_dir / "index"
    assert index_dir.is_dir() and any(index_dir.iterdir()), "no snapshot written on SIGTERM"
    shutil.rmtree(index_dir)
    corpus.start()
    assert_same_results(before, search_all(corpus, topics))
    info2 = corpus.collection(COLL)
    assert (info2["vectors"], info2["seq"]) == (info0["vectors"], info0["seq"])
    for d in topics[:3]:
        st, doc = corpus.request("GET", f"/v1/collections/{COLL}/documents/{d['id']}")
        assert st == 200 and doc["text"] == d["text"]


def test_deleted_collection_stays_deleted(ragd_backend, topics):
    """A deleted collection does not come back on restart (from a stale
    snapshot or the store), and a new one under the same name starts empty."""
    srv = ragd_backend
    srv.create_collection("phoenix")
    for d in topics[:5]:
        srv.add_doc("phoenix", d["text"], d["id"])
    st, body = srv.request("DELETE", "/v1/collections/phoenix")
    assert st == 200, body
    srv.restart()
    st, body = srv.request("GET", "/v1/collections/phoenix")
    assert_error(st, body, 404)

    srv.create_collection("phoenix")
    srv.add_doc("phoenix", "Hot air balloons rise because warm air is lighter.", "balloon")
    for restart in (srv.restart, None):
        if restart:
            restart()
        hits = srv.search("phoenix", topics[0]["query"], top_k=100)
        assert [h["document_id"] for h in hits] == ["balloon"], hits
        assert srv.collection("phoenix")["vectors"] == 1
    srv.stop()
    shutil.rmtree(srv.data_dir / "index", ignore_errors=True)
    srv.start()
    assert [h["document_id"] for h in srv.search("phoenix", "anything", 100)] == ["balloon"]
    srv.request("DELETE", "/v1/collections/phoenix")


def test_replace_long_with_short(ragd_backend, topics):
    """Replacing a many-chunk document with a one-chunk one leaves no stale
    chunks behind, before and after restarts."""
    srv = ragd_backend
    srv.create_collection("shrink", chunk_size=16, chunk_overlap=2)
    long_text = " ".join(d["text"] for d in topics[:5])
    b = srv.add_doc("shrink", long_text, "L")
    assert b["chunks"] > 5
    assert srv.collection("shrink")["vectors"] == b["chunks"]
    b = srv.add_doc("shrink", "Short note about kites.", "L")
    assert b["replaced"] is True and b["chunks"] == 1

    def check():
        assert srv.collection("shrink")["vectors"] == 1
        hits = srv.search("shrink", topics[0]["query"], top_k=1000)
        assert [(h["document_id"], h["text"]) for h in hits] == [("L", "Short note about kites.")]

    check()
    srv.restart()
    check()
    srv.stop()
    shutil.rmtree(srv.data_dir / "index", ignore_errors=True)
    srv.start()
    check()
    srv.request("DELETE", "/v1/collections/shrink")


def test_concurrent_writes_and_searches(ragd_backend, topics):
    """Parallel clients: every write lands exactly once, nothing errors, and
    concurrent replaces of one id leave exactly one version."""
    srv = ragd_backend
    import threading
    srv.create_collection("conc")
    errors = []

    def writer(k):
        try:
            for i in range(4):
                d = topics[(k * 4 + i) % len(topics)]
                st, b = srv.request("POST", "/v1/collections/conc/documents",
                                     {"id": f"t{k}-{i}", "text": d["text"]})
                if st != 201:
                    errors.append((st, b))
                st, b = srv.request("POST", "/v1/collections/conc/search",
                                     {"query": d["query"], "top_k": 3})
                if st != 200:
                    errors.append((st, b))
                st, b = srv.request("POST", "/v1/collections/conc/documents",
                                     {"id": "same", "text": topics[(k + i) % 50]["text"]})
                if st not in (200, 201):
                    errors.append((st, b))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"\n6 clients x 12 requests in {time.monotonic() - t0:.2f}s")
    assert not errors, errors[:5]

    def check():
        hits = srv.search("conc", "anything", top_k=1000)
        ids = [h["document_id"] for h in hits]
        assert len(ids) == len(set(ids)) == 25, len(ids)
        assert srv.collection("conc")["vectors"] == 25
        st, doc = srv.request("GET", "/v1/collections/conc/documents/same")
        same = [h for h in hits if h["document_id"] == "same"]
        assert same[0]["text"] == doc["text"]

    check()
    srv.restart()
    check()
    srv.request("DELETE", "/v1/collections/conc")


def test_crash_recovery(ragd_backend, topics):
    """After SIGKILL, writes made since the last snapshot (adds, a delete, a
    replace) are all there on the next start."""
    srv = ragd_backend
    srv.create_collection("crash")
    for d in topics[:5]:
        srv.add_doc("crash", d["text"], d["id"])
    srv.restart()  # snapshot at this point
    for d in topics[5:8]:
        srv.add_doc("crash", d["text"], d["id"])
    srv.request("DELETE", f"/v1/collections/crash/documents/{topics[0]['id']}")
    srv.add_doc("crash", topics[20]["text"], topics[1]["id"])  # replace
    queries = [d["query"] for d in topics[:8]] + [topics[20]["query"]]
    # dense: the vector index's recovery is what is compared; hybrid scores
    # also move with BM25's corpus statistics, which count a deleted chunk
    # until the follower purges it from FTS5
    before = {q: srv.search("crash", q, top_k=10, mode="dense") for q in queries}
    info = srv.collection("crash")
    assert info["vectors"] == 7

    srv.kill()
    srv.start()
    after = {q: srv.search("crash", q, top_k=10, mode="dense") for q in queries}
    assert_same_results(before, after)
    info2 = srv.collection("crash")
    assert (info2["vectors"], info2["seq"]) == (info["vectors"], info["seq"])
    st, body = srv.request("GET", f"/v1/collections/crash/documents/{topics[0]['id']}")
    assert_error(st, body, 404)
    st, body = srv.request("GET", f"/v1/collections/crash/documents/{topics[1]['id']}")
    assert st == 200 and body["text"] == topics[20]["text"], body
    srv.request("DELETE", "/v1/collections/crash")
