"""Changing a collection's chunker (PATCH /v1/collections/{name} with chunker,
chunk_size, chunk_overlap) against the real server: a background job cuts
every document again from its stored text and structure while the old
collection keeps answering, then swaps atomically. Section paths and pages
survive (Markdown, HTML, PDF), chunks whose text did not change keep their
vectors, the job resumes after kill -9 and can be cancelled, bad settings are
400s that change nothing, and writes racing the swap are never lost."""
import json
import threading
import time

from conftest import http_request, needs_local_tokenizer
from test_ingest import HTML, make_pdf, metric, upload, wait_job

MARKDOWN = """# Pump manual

Intro paragraph about the pump.

## Installation

Bolt the pump to the floor with four bolts. Connect the inlet hose before the
outlet hose, and check that the clamps are tight before you switch it on.
Prime the pump with water so that it never runs dry on the first start.

### Wiring

Use a grounded socket. The cable must not touch the housing.

## Maintenance

Replace the seals every spring. Grease the bearings twice a year and look at
the impeller for wear. A worn impeller makes the pump loud and weak; order a
new one from the dealer, quoting the serial number on the label.
"""

PDF_PAGES = ["Alpha page about rivers. " + "Water flows downhill to the sea. " * 12,
             "Beta page about mountains. " + "Rocks rise above the clouds. " * 12,
             "Gamma page about deserts. " + "Sand drifts in the hot wind. " * 12]


def tokens(srv, text):
    """The embedding model's tokens for text, specials excluded (usage counts 2)."""
    status, body = srv.request("POST", "/v1/embeddings",
                               {"input": text, "model": "all-MiniLM-L6-v2"})
    assert status == 200, body
    return body["usage"]["prompt_tokens"] - 2


def chunks(srv, coll, doc):
    status, body = srv.request("GET", f"/v1/collections/{coll}/documents/{doc}/chunks")
    assert status == 200, body
    return body["chunks"]


def filler(n, seed):
    return [{"id": f"f{i}", "text": " ".join(f"filler{seed}w{i}x{j} and more" for j in range(60))}
            for i in range(n)]


def batch(srv, coll, docs):
    status, job = srv.request("POST", f"/v1/collections/{coll}/documents:batch",
                              {"documents": docs})
    assert status == 202, job
    job = wait_job(srv, job["job_id"], timeout=300)
    assert job["state"] == "succeeded", job


def test_change_chunker(ragd_factory):
    needs_local_tokenizer()
    s = ragd_factory()
    s.create_collection("rc", chunk_size=24, chunk_overlap=0)
    status, job = upload(s, "rc", [("manual.md", MARKDOWN.encode(), "text/markdown"),
                                   ("kettle.html", HTML.encode(), "text/html"),
                                   ("atlas.pdf", make_pdf(PDF_PAGES), "application/pdf")],
                         {"metadata": json.dumps({"team": "docs"})})
    assert status == 202, job
    assert wait_job(s, job["job_id"])["state"] == "succeeded"
    batch(s, "rc", filler(12, "a"))
    before = {d: chunks(s, "rc", d) for d in ("manual.md", "kettle.html", "atlas.pdf")}
    seq_before = s.collection("rc")["seq"]

    # Bad settings: 400 naming the field, nothing queued, nothing changed.
    for body, field in (({"chunk_size": 3}, "chunk_size"),
                        ({"chunk_size": 100000}, "chunk_size"),
                        ({"chunk_size": "big"}, "chunk_size"),
                        ({"chunk_overlap": 24}, "chunk_overlap"),
                        ({"chunk_size": 64, "chunk_overlap": 64}, "chunk_overlap"),
                        ({"chunker": "sentences"}, "chunker"),
                        ({"chunker": 7}, "chunker"),
                        ({"chunk_size": 24}, "chunk_size"),
                        ({"chunking": {"size": 64}}, "chunking"),
                        ({}, "embedding_model")):
        status, err = s.request("PATCH", "/v1/collections/rc", body)
        assert status == 400 and err["error"]["field"] == field, (body, status, err)
    status, err = s.request("PATCH", "/v1/collections/nope", {"chunk_size": 64})
    assert status == 404, err
    coll = s.collection("rc")
    assert (coll["chunk_size"], coll["chunk_overlap"], coll["seq"]) == (24, 0, seq_before), coll
    assert chunks(s, "rc", "manual.md") == before["manual.md"]

    embedded = metric(s, "ragd_embed_texts_total")
    status, job = s.request("PATCH", "/v1/collections/rc", {"chunk_size": 64})
    assert status == 202 and job["kind"] == "rechunk", job
    assert job["target"]["chunk_size"] == 64 and job["target"]["chunker"] == "structured", job
    # The old collection answers all along.
    answered = 0
    while True:
        hits = s.search("rc", "how often to replace the seals")
        assert hits and hits[0]["document_id"] == "manual.md", hits
        answered += 1
        status, j = s.request("GET", f"/v1/jobs/{job['job_id']}")
        if j["state"] != "running" and j["state"] != "queued":
            break
    assert answered >= 2
    assert j["state"] == "succeeded" and j["counts"]["done"] == 15, j
    coll = s.collection("rc")
    assert (coll["chunk_size"], coll["chunker"]) == (64, "structured"), coll

    after = {d: chunks(s, "rc", d) for d in before}
    for d in before:
        old, new = before[d], after[d]
        assert len(new) <= len(old), (d, len(old), len(new))
        # same text, cut at the same structure: sections and pages kept
        assert {c["section"] for c in new} <= {c["section"] for c in old}, d
        # a chunk's page is that of its first byte, as before
        for c in new:
            holder = [o for o in old if o["start"] <= c["start"] < o["end"]]
            assert holder and holder[0]["page"] == c["page"], (d, c, holder)
        assert all(tokens(s, c["text"]) <= 64 for c in new), d
        _, doc = s.request("GET", f"/v1/collections/rc/documents/{d}")
        text = doc["text"].encode()
        assert all(text[c["start"]:c["end"]].decode() == c["text"] for c in new), d
        assert doc["metadata"] == {"team": "docs"}
    for d in ("manual.md", "atlas.pdf"):  # long enough to be cut differently
        assert len(after[d]) < len(before[d]), d
        assert max(tokens(s, c["text"]) for c in after[d]) > 24, d
    assert any("Maintenance" in c["section"] for c in after["manual.md"])
    assert any("Wiring" in c["section"] for c in after["manual.md"])
    assert {c["page"] for c in after["atlas.pdf"]} > {1}
    # Chunks cut the same way kept their vectors: a short section's one chunk.
    new_total = sum(len(chunks(s, "rc", f"f{i}")) for i in range(12)) + \
        sum(len(v) for v in after.values())
    reembedded = metric(s, "ragd_embed_texts_total") - embedded
    assert 0 < reembedded < new_total, (reembedded, new_total)
    hits = s.search("rc", "mountains and rocks")
    assert hits[0]["document_id"] == "atlas.pdf" and hits[0]["page"] in (1, 2), hits[0]
    _, listing = s.request("GET", "/v1/collections")
    assert [c["name"] for c in listing["collections"]] == ["rc"]

    # Survives a restart; new documents are cut with the new settings.
    s.restart()
    assert s.collection("rc")["chunk_size"] == 64
    status, job = upload(s, "rc", [("manual2.md", MARKDOWN.encode(), "text/markdown")])
    assert wait_job(s, job["job_id"])["state"] == "succeeded"
    assert [c["text"] for c in chunks(s, "rc", "manual2.md")] == \
        [c["text"] for c in after["manual.md"]]
    # The strategy can change too (fixed windows cross headings).
    status, job = s.request("PATCH", "/v1/collections/rc", {"chunker": "fixed",
                                                            "chunk_overlap": 8})
    assert status == 202, job
    assert wait_job(s, job["job_id"], timeout=300)["state"] == "succeeded"
    coll = s.collection("rc")
    assert (coll["chunker"], coll["chunk_size"], coll["chunk_overlap"]) == ("fixed", 64, 8)


def test_rechunk_resumes_after_kill(ragd_factory):
    needs_local_tokenizer()
    s = ragd_factory(extra_args=("--set", "ingest.job_lease_ms=500"))
    s.create_collection("rr", chunk_size=16, chunk_overlap=0)
    batch(s, "rr", filler(30, "r"))
    status, job = s.request("PATCH", "/v1/collections/rr", {"chunk_size": 48})
    assert status == 202, job
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, j = s.request("GET", f"/v1/jobs/{job['job_id']}")
        if j["counts"]["done"] >= 2:
            break
        time.sleep(0.05)
    assert j["state"] == "running" and j["counts"]["done"] < 30, j
    s.kill()
    s.start()
    # still the old settings until the job is done
    assert s.collection("rr")["chunk_size"] in (16, 48)
    j = wait_job(s, job["job_id"], timeout=300)
    assert j["state"] == "succeeded" and j["counts"]["failed"] == 0, j
    assert s.collection("rr")["chunk_size"] == 48
    status, page = s.request("GET", "/v1/collections/rr/documents?limit=100")
    assert len(page["documents"]) == 30
    assert all(tokens(s, c["text"]) <= 48 for c in chunks(s, "rr", "f0"))
    assert len(chunks(s, "rr", "f0")) < 16
    _, listing = s.request("GET", "/v1/collections")
    assert [c["name"] for c in listing["collections"]] == ["rr"]


def test_rechunk_cancel(ragd_factory):
    s = ragd_factory()
    s.create_collection("rx", chunk_size=16, chunk_overlap=0)
    batch(s, "rx", filler(30, "x"))
    before = chunks(s, "rx", "f3")
    status, job = s.request("PATCH", "/v1/collections/rx", {"chunk_size": 48})
    assert status == 202, job
    status, body = s.request("DELETE", f"/v1/jobs/{job['job_id']}")
    assert status == 200 and body["state"] == "cancelled", body
    j = wait_job(s, job["job_id"])
    assert j["state"] == "cancelled" and j["counts"]["done"] < 30, j
    time.sleep(1.5)  # the worker notices at its next item and drops the staging collection
    coll = s.collection("rx")
    assert (coll["chunk_size"], coll["chunk_overlap"]) == (16, 0), coll
    assert chunks(s, "rx", "f3") == before
    assert s.search("rx", "fillerxw3x5")
    # the collection can be changed again afterwards
    status, job = s.request("PATCH", "/v1/collections/rx", {"chunk_size": 32})
    assert status == 202, job
    assert wait_job(s, job["job_id"], timeout=300)["state"] == "succeeded"
    assert s.collection("rx")["chunk_size"] == 32
    _, listing = s.request("GET", "/v1/collections")
    assert [c["name"] for c in listing["collections"]] == ["rx"]


def test_writes_racing_the_swap_are_kept(ragd_factory):
    """A writer hammers upserts and deletes during the job; after the swap
    every acknowledged write is there with its latest text."""
    s = ragd_factory()
    s.create_collection("race", chunk_size=16, chunk_overlap=0)
    batch(s, "race", filler(20, "z"))
    latest, deleted, stop = {}, set(), threading.Event()
    errors = []

    def writer():
        n = 0
        while not stop.is_set():
            doc_id = f"w{n % 7}"
            text = f"version {n} of {doc_id}: the racing writer's words number {n}"
            status, body, _ = http_request("127.0.0.1", s.port, "POST",
                                           "/v1/collections/race/documents",
                                           {"id": doc_id, "text": text})
            if status in (200, 201):
                latest[doc_id] = text
                deleted.discard(doc_id)
            else:
                errors.append((status, body))
            if n % 5 == 4:  # and deletes one of the fillers
                victim = f"f{n % 20}"
                status, body, _ = http_request("127.0.0.1", s.port, "DELETE",
                                               f"/v1/collections/race/documents/{victim}")
                if status == 200:
                    deleted.add(victim)
                elif status != 404:
                    errors.append((status, body))
            n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.5)
        status, job = s.request("PATCH", "/v1/collections/race", {"chunk_size": 40})
        assert status == 202, job
        j = wait_job(s, job["job_id"], timeout=300)
        time.sleep(0.5)  # writes right after the swap too
    finally:
        stop.set()
        t.join()
    assert j["state"] == "succeeded", j
    assert not errors, errors[:3]
    assert s.collection("race")["chunk_size"] == 40
    for doc_id, text in latest.items():
        status, doc = s.request("GET", f"/v1/collections/race/documents/{doc_id}")
        assert status == 200 and doc["text"] == text, (doc_id, text, doc)
        assert "".join(c["text"] for c in chunks(s, "race", doc_id)).replace(" ", "") == \
            text.replace(" ", "")
    for victim in deleted:
        status, _ = s.request("GET", f"/v1/collections/race/documents/{victim}")
        assert status == 404, victim
    # and the index agrees with the store: the latest text is what search finds
    doc_id, text = next(iter(latest.items()))
    hits = s.search("race", text, top_k=3)
    assert hits[0]["document_id"] == doc_id, hits


def test_rechunk_documents_without_stored_structure(ragd_factory):
    """A document stored before ragd kept the structure (schema < 5: blocks
    NULL) is cut again from its text as plain text, and the log says so."""
    import sqlite3

    s = ragd_factory()
    s.create_collection("old", chunk_size=16, chunk_overlap=0)
    status, job = upload(s, "old", [("manual.md", MARKDOWN.encode(), "text/markdown")])
    assert wait_job(s, job["job_id"])["state"] == "succeeded"
    s.add_doc("old", "plain words " * 30, "plain")
    s.stop()
    db = sqlite3.connect(s.data_dir / "ragd.db")
    db.execute("UPDATE documents SET blocks = NULL")
    db.commit()
    db.close()
    s.start()
    status, job = s.request("PATCH", "/v1/collections/old", {"chunk_size": 48})
    assert status == 202, job
    j = wait_job(s, job["job_id"], timeout=300)
    assert j["state"] == "succeeded" and j["counts"]["done"] == 2, j
    new = chunks(s, "old", "manual.md")
    assert {c["section"] for c in new} == {""}  # headings are not known any more
    _, doc = s.request("GET", "/v1/collections/old/documents/manual.md")
    text = doc["text"].encode()
    assert all(text[c["start"]:c["end"]].decode() == c["text"] for c in new)
    assert all(tokens(s, c["text"]) <= 48 for c in new)
    said = [l for l in s.log_lines() if "cut again as plain text" in l.get("msg", "")]
    assert len(said) == 2, said
    # the structure derived then is kept: a second change needs no fallback
    status, job = s.request("PATCH", "/v1/collections/old", {"chunk_size": 32})
    assert wait_job(s, job["job_id"], timeout=300)["state"] == "succeeded"
    said = [l for l in s.log_lines() if "cut again as plain text" in l.get("msg", "")]
    assert len(said) == 2, said
