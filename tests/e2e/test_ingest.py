"""
End-to-end tests of ingestion at production quality, against the real
binary: formats chosen by content type / extension / forced, 415 for binary
input, chunk attribution (offsets, page, section), content-hash upserts,
content-addressed chunk reuse (the embed counter grows only by the changed
chunks), document listing with pagination and filters, batch and multipart
jobs with progress, per-file errors, cancel, resume after kill -9 (and no
item applied twice over a client's later write), ingest root confinement, size limits, and `ragd ingest DIR` (globs, skip
unchanged, --sync, --watch). Every file is created by the tests.
"""
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest

from conftest import RAGD_BIN, RAGD_MODEL, ragd_env, run_cli, http_request

MARKDOWN = """# Pump manual

Intro paragraph about the pump.

## Installation

Bolt the pump to the floor. Connect the inlet hose before the outlet hose.

## Maintenance

Replace the seals every spring. Grease the bearings twice a year.
"""

HTML = """<!DOCTYPE html><html><head><title>Kettle guide</title></head><body>
<h1>Kettle guide</h1><p>Fill the kettle with fresh water.</p>
<h2>Descaling</h2><p>Boil vinegar and water to remove the limescale every month.</p>
</body></html>"""


def make_pdf(pages):
    """A minimal valid PDF, one text line per page, written by hand."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", None,
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
        content = len(objs)
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    f"/Contents {content} 0 R /Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objs)} 0 R")
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def multipart(files, fields=None):
    """(body, content type) of a multipart/form-data form."""
    boundary = "b" + uuid.uuid4().hex
    out = b""
    for name, value in (fields or {}).items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()
    for fname, data, ctype in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                f"filename=\"{fname}\"\r\nContent-Type: {ctype}\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def metric(srv, name):
    _, _, raw = srv.raw_request("GET", "/metrics")
    total = 0.0
    for line in raw.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_job(srv, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = srv.request("GET", f"/v1/jobs/{job_id}")
        assert status == 200, (status, job)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']}: {job}")


def upload(srv, coll, files, fields=None):
    body, ctype = multipart(files, fields)
    return srv.request("POST", f"/v1/collections/{coll}/files", body,
                       headers={"Content-Type": ctype})


@pytest.fixture(scope="module")
def srv(ragd_module_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("ingest-root")
    (root / "inside.md").write_text(MARKDOWN)
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("secret outside the root")
    (root / "escape.txt").symlink_to(outside)
    s = ragd_module_factory(extra_args=("--set", f"ingest.root={root}",
                                        "--set", "ingest.max_file_bytes=64k"))
    s.root, s.outside = root, outside
    return s


def test_formats_and_attribution(srv):
    srv.create_collection("fmt", chunk_size=32, chunk_overlap=0)
    status, job = upload(srv, "fmt", [("manual.md", MARKDOWN.encode(), "text/markdown"),
                                      ("kettle.html", HTML.encode(), "text/html"),
                                      ("report.pdf", make_pdf([
                                          "Alpha page about rivers. " + "Water flows. " * 20,
                                          "Beta page about mountains. " + "Rocks rise. " * 20]),
                                       "application/pdf")],
                         {"metadata": json.dumps({"team": "docs"})})
    assert status == 202, job
    job = wait_job(srv, job["job_id"])
    assert job["state"] == "succeeded" and job["counts"]["done"] == 3, job

    status, chunks = srv.request("GET", "/v1/collections/fmt/documents/manual.md/chunks")
    assert status == 200, chunks
    sections = {c["section"] for c in chunks["chunks"]}
    assert any("Maintenance" in s for s in sections), sections
    status, doc = srv.request("GET", "/v1/collections/fmt/documents/manual.md")
    text = doc["text"].encode()
    for c in chunks["chunks"]:
        assert text[c["start"]:c["end"]].decode() == c["text"]
        assert c["model"].startswith("all-MiniLM-L6-v2@") and len(c["hash"]) == 32
    assert doc["metadata"] == {"team": "docs"}
    assert "<h1>" not in doc["text"]

    _, html = srv.request("GET", "/v1/collections/fmt/documents/kettle.html")
    assert "Descaling" in html["text"] and "<p>" not in html["text"]

    _, pdf = srv.request("GET", "/v1/collections/fmt/documents/report.pdf/chunks")
    pages = {c["page"] for c in pdf["chunks"]}
    texts = " ".join(c["text"] for c in pdf["chunks"])
    assert "rivers" in texts and "mountains" in texts and pages >= {1, 2}, pdf

    # searches carry the document's metadata
    hits = srv.search("fmt", "how often to replace the seals")
    assert hits[0]["document_id"] == "manual.md" and hits[0]["metadata"] == {"team": "docs"}
    assert "Maintenance" in hits[0]["section"] and hits[0]["page"] == 0, hits[0]
    hits = srv.search("fmt", "mountains and rocks")
    assert hits[0]["document_id"] == "report.pdf" and hits[0]["page"] == 2, hits[0]


def test_format_forced_and_binary_refused(srv):
    srv.create_collection("force")
    # Markdown forced on text: headings become sections
    status, body = srv.request("POST", "/v1/collections/force/documents",
                               {"id": "m", "text": MARKDOWN, "format": "markdown"})
    assert status == 201, body
    _, chunks = srv.request("GET", "/v1/collections/force/documents/m/chunks")
    assert any(c["section"] for c in chunks["chunks"])
    # an unknown format names the field
    status, body = srv.request("POST", "/v1/collections/force/documents",
                               {"id": "x", "text": "hello", "format": "docx"})
    assert status == 400 and body["error"]["field"] == "format", body
    # binary bytes in a batch job: recorded as a failed file, nothing stored
    status, job = upload(srv, "force", [("blob.bin", bytes(range(256)) * 4,
                                         "application/octet-stream"),
                                        ("ok.txt", b"fine text", "text/plain")])
    job = wait_job(srv, job["job_id"])
    assert job["counts"]["failed"] == 1 and job["counts"]["done"] == 1, job
    assert job["errors"][0]["file"] == "blob.bin" and job["errors"][0]["error"], job
    status, _ = srv.request("GET", "/v1/collections/force/documents/blob.bin")
    assert status == 404


def test_raw_body_formats_and_415(srv):
    srv.create_collection("raw")
    # a document sent as its bytes: format from the content type
    status, body = srv.request("POST", "/v1/collections/raw/documents?id=kettle", HTML.encode(),
                               headers={"Content-Type": "text/html"})
    assert status == 201, body
    _, doc = srv.request("GET", "/v1/collections/raw/documents/kettle")
    assert "Descaling" in doc["text"] and "<p>" not in doc["text"], doc
    # ... or from the name's extension, or forced
    status, body = srv.request("POST", "/v1/collections/raw/documents?id=pdf&name=r.pdf",
                               make_pdf(["Some page text about owls"]),
                               headers={"Content-Type": "application/octet-stream"})
    assert status == 201, body
    status, body = srv.request(
        "POST", "/v1/collections/raw/documents?id=md&format=markdown&metadata=%7B%22a%22%3A1%7D",
        MARKDOWN.encode(), headers={"Content-Type": "text/plain"})
    assert status == 201, body
    _, doc = srv.request("GET", "/v1/collections/raw/documents/md")
    assert doc["metadata"] == {"a": 1}
    # binary input: 415, nothing stored
    status, body = srv.request("POST", "/v1/collections/raw/documents?id=blob",
                               bytes(range(256)) * 8,
                               headers={"Content-Type": "application/octet-stream"})
    assert status == 415 and body["error"]["code"] == "unsupported", body
    status, _ = srv.request("GET", "/v1/collections/raw/documents/blob")
    assert status == 404
    # a truncated PDF: refused with the reason, nothing stored
    status, body = srv.request("POST", "/v1/collections/raw/documents?id=trunc&format=pdf",
                               make_pdf(["whole"])[:60],
                               headers={"Content-Type": "application/pdf"})
    assert status in (400, 415) and body["error"]["message"], body
    status, _ = srv.request("GET", "/v1/collections/raw/documents/trunc")
    assert status == 404
    status, body = srv.request("POST", "/v1/collections/raw/documents?id=x&metadata=%5B%5D",
                               b"text", headers={"Content-Type": "text/plain"})
    assert status == 400 and body["error"]["field"] == "metadata", body


def test_unchanged_and_chunk_reuse(srv):
    srv.create_collection("reuse", chunk_size=24, chunk_overlap=0)
    paras = [f"Paragraph {i} talks about topic number {i} with some extra words." for i in range(8)]
    text = "\n\n".join(paras)
    first = srv.add_doc("reuse", text, "doc")
    assert first["embedded"] == first["chunks"] > 3, first
    before = metric(srv, "ragd_embed_texts_total")
    again = srv.add_doc("reuse", text, "doc")
    assert again["unchanged"] and again["embedded"] == 0, again
    assert again["chunks"] == first["chunks"]
    assert metric(srv, "ragd_embed_texts_total") == before
    # edit one paragraph: only the chunks that changed are embedded again
    paras[3] = "Paragraph three now speaks of something completely different instead."
    edited = srv.add_doc("reuse", "\n\n".join(paras), "doc")
    assert edited["replaced"] and not edited["unchanged"]
    assert 1 <= edited["embedded"] < edited["chunks"], edited
    assert metric(srv, "ragd_embed_texts_total") == before + edited["embedded"]
    # the replaced document's chunks are exactly the new ones
    _, chunks = srv.request("GET", "/v1/collections/reuse/documents/doc/chunks")
    assert len(chunks["chunks"]) == edited["chunks"]
    assert [c["ordinal"] for c in chunks["chunks"]] == list(range(edited["chunks"]))
    hits = srv.search("reuse", "something completely different", top_k=50)
    assert len(hits) == edited["chunks"]
    # metadata is part of the content hash: changing it is an update
    meta = srv.add_doc("reuse", "\n\n".join(paras), "doc", metadata={"v": 2})
    assert not meta["unchanged"] and meta["embedded"] == 0, meta


def test_list_documents_pagination_and_filter(srv):
    srv.create_collection("list")
    for i in range(7):
        srv.add_doc("list", f"document number {i} about lists", f"d{i}",
                    metadata={"even": i % 2 == 0, "n": i})
    seen, cursor = [], None
    while True:
        q = "limit=3" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, page = srv.request("GET", f"/v1/collections/list/documents?{q}")
        assert status == 200, page
        seen += [d["id"] for d in page["documents"]]
        assert len(page["documents"]) <= 3
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"d{i}" for i in range(7)]
    f = urllib.parse.quote(json.dumps({"even": True, "n": {"$gte": 2}}))
    status, page = srv.request("GET", f"/v1/collections/list/documents?filter={f}")
    assert status == 200, page
    assert [d["id"] for d in page["documents"]] == ["d2", "d4", "d6"]
    assert page["documents"][0]["metadata"] == {"even": True, "n": 2}
    for bad in ("limit=0", "limit=abc", "limit=100000", "filter=%7Bnot-json"):
        status, body = srv.request("GET", f"/v1/collections/list/documents?{bad}")
        assert status == 400, (bad, body)
    status, _ = srv.request("GET", "/v1/collections/nope/documents")
    assert status == 404


def test_batch_job_counts_errors_and_throughput(srv):
    srv.create_collection("batch")
    docs = [{"id": f"b{i}", "text": f"batch document {i} about oceans and tides",
             "metadata": {"i": i}} for i in range(12)]
    docs.append({"id": "bad", "text": "   "})
    docs.append({"id": "fromroot", "path": "inside.md"})
    status, job = srv.request("POST", "/v1/collections/batch/documents:batch", {"documents": docs})
    assert status == 202 and job["job_id"].startswith("job_"), job
    job = wait_job(srv, job["job_id"])
    c = job["counts"]
    assert (c["total"], c["done"], c["failed"], c["pending"]) == (14, 13, 1, 0), job
    assert c["chunks"] >= 13 and c["bytes"] > 0
    assert job["throughput"]["documents_per_s"] > 0 and job["eta_s"] == 0
    assert job["errors"] == [{"index": 12, "id": "bad", "file": "", "error": "text is empty"}]
    _, doc = srv.request("GET", "/v1/collections/batch/documents/fromroot")
    assert "Bolt the pump" in doc["text"]
    # the same batch again: every document unchanged
    status, job = srv.request("POST", "/v1/collections/batch/documents:batch",
                              {"documents": docs[:12]})
    job = wait_job(srv, job["job_id"])
    assert job["counts"]["unchanged"] == 12 and job["counts"]["chunks"] == 0, job


def test_batch_bad_requests_store_nothing(srv):
    srv.create_collection("badbatch")
    cases = [
        ({}, "documents"),
        ({"documents": []}, "documents"),
        ({"documents": [{"id": "a"}]}, "documents[0]"),
        ({"documents": [{"text": "a", "path": "inside.md"}]}, "documents[0]"),
        ({"documents": [{"text": "a", "colour": "red"}]}, "documents[0]"),
        ({"documents": [{"path": "../outside/secret.txt"}]}, "documents[0].path"),
        ({"documents": [{"path": "escape.txt"}]}, "documents[0].path"),
        ({"documents": [{"path": "/etc/passwd"}]}, "documents[0].path"),
    ]
    for body, field in cases:
        status, resp = srv.request("POST", "/v1/collections/badbatch/documents:batch", body)
        assert status == 400, (body, resp)
        assert resp["error"]["field"] == field, (body, resp)
    status, page = srv.request("GET", "/v1/collections/badbatch/documents")
    assert page["documents"] == []
    status, body = srv.request("POST", "/v1/collections/nope/documents:batch",
                               {"documents": [{"text": "x"}]})
    assert status == 404, body


def test_size_limits(srv):
    srv.create_collection("sizes")
    big = b"word " * 20000  # 100 KB > ingest.max_file_bytes (64k)
    status, body = upload(srv, "sizes", [("big.txt", big, "text/plain")])
    assert status == 413 and body["error"]["code"] == "too_large", body
    status, body = srv.request("POST", "/v1/collections/sizes/documents",
                               {"id": "big", "text": big.decode()})
    assert status == 413, body
    status, body = srv.request("POST", "/v1/collections/sizes/documents?id=big", big,
                               headers={"Content-Type": "text/plain"})
    assert status == 413, body
    (srv.root / "big.txt").write_bytes(big)
    status, body = srv.request("POST", "/v1/collections/sizes/documents:batch",
                               {"documents": [{"path": "big.txt"}]})
    assert status == 413 and body["error"]["field"] == "documents[0].path", body
    status, page = srv.request("GET", "/v1/collections/sizes/documents")
    assert page["documents"] == []


def test_upload_errors(srv):
    srv.create_collection("up")
    status, body = srv.request("POST", "/v1/collections/up/files", b"not a form",
                               headers={"Content-Type": "text/plain"})
    assert status == 400, body
    body_, ctype = multipart([], {"metadata": "{}"})
    status, body = srv.request("POST", "/v1/collections/up/files", body_,
                               headers={"Content-Type": ctype})
    assert status == 400 and body["error"]["field"] == "file", body
    status, body = upload(srv, "up", [("a.txt", b"x", "text/plain")], {"metadata": "[1]"})
    assert status == 400 and body["error"]["field"] == "metadata", body
    status, body = upload(srv, "up", [("a.txt", b"x", "text/plain")], {"colour": "red"})
    assert status == 400 and body["error"]["field"] == "colour", body


def test_jobs_not_found_and_cancel(srv):
    status, body = srv.request("GET", "/v1/jobs/job_nope")
    assert status == 404, body
    status, body = srv.request("DELETE", "/v1/jobs/job_nope")
    assert status == 404, body
    srv.create_collection("cancel")
    docs = [{"id": f"c{i}", "text": " ".join(f"word{i}x{j}" for j in range(400))}
            for i in range(40)]
    status, job = srv.request("POST", "/v1/collections/cancel/documents:batch",
                              {"documents": docs})
    job_id = job["job_id"]
    status, body = srv.request("DELETE", f"/v1/jobs/{job_id}")
    assert status == 200 and body["state"] == "cancelled", body
    job = wait_job(srv, job_id)
    assert job["state"] == "cancelled" and job["counts"]["done"] < 40, job
    status, body = srv.request("DELETE", f"/v1/jobs/{job_id}")
    assert status == 409, body


def test_delete_document_removes_chunks(srv):
    srv.create_collection("del", chunk_size=16, chunk_overlap=0)
    body = srv.add_doc("del", " ".join(f"token{i}" for i in range(300)), "long")
    assert body["chunks"] > 5
    status, _ = srv.request("DELETE", "/v1/collections/del/documents/long")
    assert status == 200
    assert srv.collection("del")["vectors"] == 0
    status, _ = srv.request("GET", "/v1/collections/del/documents/long/chunks")
    assert status == 404


def test_job_resumes_after_kill(ragd_factory):
    s = ragd_factory(extra_args=("--set", "ingest.job_lease_ms=500"))
    s.create_collection("resume")
    docs = [{"id": f"r{i}", "text": " ".join(f"resume{i} item{j}" for j in range(300))}
            for i in range(30)]
    status, job = s.request("POST", "/v1/collections/resume/documents:batch", {"documents": docs})
    assert status == 202
    job_id = job["job_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, j = s.request("GET", f"/v1/jobs/{job_id}")
        if j["counts"]["done"] >= 2:
            break
        time.sleep(0.05)
    assert j["state"] == "running" and j["counts"]["done"] < 30, j
    s.kill()
    s.start()
    job = wait_job(s, job_id, timeout=180)
    assert job["state"] == "succeeded", job
    c = job["counts"]
    assert c["done"] + c["unchanged"] == 30 and c["failed"] == 0, job
    status, page = s.request("GET", "/v1/collections/resume/documents?limit=100")
    assert len(page["documents"]) == 30


class LaterWriter(threading.Thread):
    """Writes newer versions of documents a batch job created, while the
    job runs and the server is killed: each write comes after the job's
    item for that document was applied (the document exists only through
    the job until then). Records, per id, the versions acknowledged."""

    def __init__(self, srv, coll, ids, seed):
        super().__init__(daemon=True)
        self.srv, self.coll, self.ids = srv, coll, ids
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.version = {i: 0 for i in ids}
        self.acked = {i: 0 for i in ids}  # highest version acknowledged
        self.unexpected = []

    def request(self, method, path, body=None):
        try:
            status, parsed, _ = http_request("127.0.0.1", self.srv.port, method, path, body,
                                             timeout=30)
            return status, parsed
        except OSError:  # killed, or restarting on another port
            return None, None

    def run(self):
        base = f"/v1/collections/{self.coll}/documents"
        while not self.stop.is_set():
            doc_id = self.rng.choice(self.ids)
            status, doc = self.request("GET", f"{base}/{doc_id}")
            if status != 200:  # not applied yet, or the server is down
                time.sleep(0.01)
                continue
            self.version[doc_id] += 1
            k = self.version[doc_id]
            text = f"client {doc_id} v{k} " + " ".join(f"later{k} w{j}" for j in range(20))
            status, body = self.request("POST", base, {"id": doc_id, "text": text})
            if status in (200, 201):
                self.acked[doc_id] = max(self.acked[doc_id], k)
            elif status not in (None, 503):
                self.unexpected.append((doc_id, status, body))


def test_job_item_never_reapplied_over_later_writes(ragd_factory):
    """A batch job killed at random moments while a client writes newer
    versions of the documents it applied: after the restarts and the job's
    completion, each document holds the client's last acknowledged version
    (or a later one whose answer the kill cut off), never the job's again.
    A job records an item done in its document's own commit, so a restart
    never reruns an item that was applied."""
    rng = random.Random(20261127)
    s = ragd_factory(extra_args=("--set", "ingest.job_lease_ms=300"))
    s.create_collection("later")
    ids = [f"L{i}" for i in range(40)]
    docs = [{"id": i, "text": f"jobv {i} " + " ".join(f"batch{i} item{j}" for j in range(150))}
            for i in ids]
    status, job = s.request("POST", "/v1/collections/later/documents:batch", {"documents": docs})
    assert status == 202, job
    job_id = job["job_id"]
    writer = LaterWriter(s, "later", ids, 7)
    writer.start()
    kills = 0
    try:
        for _ in range(6):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # kill once this run has applied something
                _, j = s.request("GET", f"/v1/jobs/{job_id}")
                if j["state"] not in ("queued", "running") or j["counts"]["done"] > 0:
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.0))
            _, j = s.request("GET", f"/v1/jobs/{job_id}")
            if j["state"] not in ("queued", "running"):
                break
            s.kill()
            kills += 1
            s.start()
        job = wait_job(s, job_id, timeout=300)
    finally:
        writer.stop.set()
        writer.join(60)
    assert kills > 0, "the job finished before the first kill"
    assert job["state"] == "succeeded", job
    c = job["counts"]
    assert c["done"] + c["unchanged"] == len(ids) and c["failed"] == 0, job
    assert writer.unexpected == [], writer.unexpected[:5]
    assert sum(1 for v in writer.acked.values() if v) >= 5, writer.acked
    for doc_id in ids:
        status, doc = s.request("GET", f"/v1/collections/later/documents/{doc_id}")
        assert status == 200, (doc_id, status, doc)
        if writer.acked[doc_id] == 0:
            continue
        assert doc["text"].startswith(f"client {doc_id} v"), (doc_id, doc["text"][:60])
        k = int(doc["text"].split()[2][1:])
        assert k >= writer.acked[doc_id], (doc_id, k, writer.acked[doc_id])
    status, page = s.request("GET", "/v1/collections/later/documents?limit=100")
    assert sorted(d["id"] for d in page["documents"]) == sorted(ids)


def test_cli_ingest_tree(tmp_path):
    data = tmp_path / "data"
    tree = tmp_path / "tree"
    (tree / "guide").mkdir(parents=True)
    (tree / "drafts").mkdir()
    (tree / "guide" / "pump.md").write_text(MARKDOWN)
    (tree / "guide" / "kettle.html").write_text(HTML)
    (tree / "notes.txt").write_text("A note about the garden shed.")
    (tree / "drafts" / "wip.txt").write_text("work in progress")
    (tree / "image.bin").write_bytes(bytes(range(256)))
    res = run_cli("ingest", "--collection", "tree", "--exclude", "drafts/*", str(tree),
                  data_dir=data, expect_ok=False)
    assert res.returncode == 1, res  # image.bin failed, the rest went in
    lines = res.json_lines()
    assert sorted(l["id"] for l in lines) == ["guide:kettle.html", "guide:pump.md", "notes.txt"]
    assert "image.bin" in res.stderr and "failed" in res.stderr, res.stderr
    assert "\r" not in res.stderr  # not a terminal: plain lines, no bar

    # re-run: nothing changed, nothing embedded
    res = run_cli("ingest", "--collection", "tree", "--include", "*.md,*.html,*.txt",
                  "--exclude", "drafts/*", str(tree), data_dir=data)
    assert all(l["unchanged"] and l["embedded"] == 0 for l in res.json_lines()), res.stdout

    # an edit is picked up, a removal deleted with --sync
    (tree / "notes.txt").write_text("A note about the garden shed and its roof.")
    (tree / "guide" / "kettle.html").unlink()
    res = run_cli("ingest", "--collection", "tree", "--include", "*.md,*.html,*.txt",
                  "--exclude", "drafts/*", "--sync", str(tree), data_dir=data)
    out = res.json_lines()
    assert {"id": "guide:kettle.html", "deleted": True} in out, out
    changed = [l for l in out if l.get("id") == "notes.txt"]
    assert changed and not changed[0]["unchanged"], out
    hits = run_cli("search", "--collection", "tree", "--json", "--top-k", "10", "kettle",
                   data_dir=data).json_lines()
    assert "guide:kettle.html" not in {h["document_id"] for h in hits}


def test_cli_ingest_watch(tmp_path):
    data = tmp_path / "data"
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "first.txt").write_text("the first file about apples")
    cmd = [RAGD_BIN, "ingest", "--data-dir", str(data), "--model", RAGD_MODEL,
           "--collection", "w", "--sync", "--watch", str(tree)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=ragd_env())
    try:
        deadline = time.monotonic() + 30
        err = b""
        while b"watching" not in err and time.monotonic() < deadline:
            time.sleep(0.2)
            err += os.read(p.stderr.fileno(), 65536) if p.poll() is None else b""
        assert b"watching" in err, err
        (tree / "sub").mkdir()
        (tree / "sub" / "second.txt").write_text("the second file about pears")
        time.sleep(1.5)
        (tree / "first.txt").unlink()
        time.sleep(1.5)
    finally:
        p.send_signal(signal.SIGTERM)
        out, rest = p.communicate(timeout=30)
    assert p.returncode == 0, rest
    lines = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
    ids = [l["id"] for l in lines]
    assert "sub:second.txt" in ids, lines
    assert {"id": "first.txt", "deleted": True} in lines, lines


def test_change_embedding_model(ragd_factory, tmp_path):
    """PATCH embedding_model: a job re-embeds every chunk with the other model
    into a staging collection while the old one serves, then swaps them;
    nothing is uploaded again, offsets/pages/sections are kept, and the
    stored vectors record the new model's fingerprint."""
    other = tmp_path / "other-minilm.gguf"
    other.write_bytes(open(RAGD_MODEL, "rb").read())
    s = ragd_factory(extra_args=("--set", f"models.embedders=other={other}"))
    s.create_collection("move", chunk_size=24, chunk_overlap=0)
    for i in range(6):
        s.add_doc("move", MARKDOWN.replace("pump", f"pump{i}"), f"m{i}", metadata={"i": i})
    _, before = s.request("GET", "/v1/collections/move/documents/m0/chunks")
    status, body = s.request("PATCH", "/v1/collections/move", {"embedding_model": "nope"})
    assert status == 400 and body["error"]["field"] == "embedding_model", body
    status, body = s.request("PATCH", "/v1/collections/move",
                             {"embedding_model": s.collection("move")["embedding_model"]})
    assert status == 400, body
    status, job = s.request("PATCH", "/v1/collections/move", {"embedding_model": "other"})
    assert status == 202, job
    # the old collection keeps serving meanwhile
    assert s.search("move", "replace the seals")
    job = wait_job(s, job["job_id"])
    assert job["state"] == "succeeded" and job["counts"]["done"] == 6, job
    coll = s.collection("move")
    assert coll["embedding_model"] == "other", coll
    _, after = s.request("GET", "/v1/collections/move/documents/m0/chunks")
    assert [(c["start"], c["end"], c["section"], c["text"]) for c in after["chunks"]] == \
        [(c["start"], c["end"], c["section"], c["text"]) for c in before["chunks"]]
    assert all(c["model"].startswith("other-minilm@") for c in after["chunks"]), after
    hits = s.search("move", "how often to replace the seals")
    assert hits and hits[0]["metadata"]["i"] in range(6)
    _, listing = s.request("GET", "/v1/collections")
    assert [c["name"] for c in listing["collections"]] == ["move"]  # no staging leftovers
    # the model change survives a restart, and new documents use the new model
    s.restart()
    body = s.add_doc("move", "a brand new document about kettles", "new")
    _, ch = s.request("GET", "/v1/collections/move/documents/new/chunks")
    assert ch["chunks"][0]["model"].startswith("other-minilm@")
