"""
A full disk: ragd's data directory on a small tmpfs, filled by a file the
test places beside it. An ingest that does not fit is answered 507
(`insufficient_storage`, naming the cause) and stores nothing; searches and
reads go on; once the filler is removed ingest works again with nothing
lost. A shutdown on a full disk cannot write its snapshot, and must leave
the previous one intact for the next start.

Needs root (mount); skipped with the reason otherwise.
"""
import hashlib
import os
import random
import subprocess
import time

import pytest

from conftest import RagdServer

TMPFS_MB = 40
FILL_MARGIN = 1 << 20  # bytes left free: a few documents fit, then the disk is full
SPARE = 400 << 10      # freed later: room for a batch's inputs, not for its documents


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def fill(path, leave):
    """Writes path until only `leave` bytes are free on its file system
    (0: until ENOSPC). Returns the bytes written."""
    st = os.statvfs(path.parent)
    free = st.f_bavail * st.f_frsize
    target = max(free - leave, 0)
    block = b"\0" * (1 << 20)
    written = 0
    # Unbuffered: a buffered file keeps the bytes a full disk refused and
    # fails again when it is closed.
    with open(path, "ab", buffering=0) as f:
        try:
            while written < target or leave == 0:
                n = f.write(block[: min(len(block), target - written)] if leave else block)
                written += n
        except OSError:
            pass
    return written


def text_of(rng, tag, n_words):
    words = [rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") + rng.choice("nrst")
             for _ in range(n_words)]
    return " ".join(words) + f" {tag}."


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_all_there(srv, acked):
    for doc_id, text in acked.items():
        status, body = srv.request("GET", f"/v1/collections/c/documents/{doc_id}")
        assert status == 200 and body["text"] == text, (doc_id, status)
        hits = srv.search("c", f"tag{doc_id.replace('-', '')}", mode="lexical")
        assert hits and hits[0]["document_id"] == doc_id, (doc_id, hits)
    status, chk = srv.request("GET", "/v1/collections/c/check")
    assert status == 200 and chk["consistent"], chk


def test_disk_full_fails_cleanly_and_recovers(tmpfs, tmp_path):
    rng = random.Random(5)
    data = tmpfs / "data"
    filler = tmpfs / "filler"
    spare = tmpfs / "spare"  # freed to let a batch in
    srv = RagdServer(data, tmp_path, ["--set", "models.generator="])
    acked = {}

    def ingest(doc_id, n_words):
        text = text_of(rng, f"tag{doc_id.replace('-', '')}", n_words)
        status, body = srv.request("POST", "/v1/collections/c/documents",
                                   {"id": doc_id, "text": text})
        if status in (200, 201):
            acked[doc_id] = text
        return status, body

    try:
        srv.start()
        srv.create_collection("c", chunk_size=64, chunk_overlap=0)
        for i in range(5):
            assert ingest(f"a-{i}", 200)[0] == 201
        srv.stop()  # writes the snapshot that the full disk must not destroy
        snap = next((data / "index").glob("*.vidx"))
        srv.start()

        # Fill the disk, leaving a little, and ingest until it does not fit.
        fill(filler, FILL_MARGIN + SPARE)
        fill(spare, FILL_MARGIN)
        full = None
        for i in range(400):
            status, body = ingest(f"b-{i}", 1000)
            if status != 201:
                full = (f"b-{i}", status, body)
                break
        assert full, "the disk never filled up"
        doc_id, status, body = full
        print(f"\nfull after {len(acked) - 5} documents: {status} {body}")
        assert status == 507, full
        err = body["error"]
        assert err["code"] == "insufficient_storage", body
        assert "full" in err["message"], body

        # Nothing of the refused document; everything else still served.
        assert srv.request("GET", f"/v1/collections/c/documents/{doc_id}")[0] == 404
        for mode in ("dense", "lexical", "hybrid"):
            assert srv.search("c", "tagb0", mode=mode)
        assert srv.request("GET", "/ready")[0] == 200
        status, body = ingest("c-0", 2000)  # still full: refused the same way
        assert status == 507, body
        status, body = srv.request("DELETE", "/v1/collections/c/documents/a-0")
        assert status in (200, 507), body
        if status == 200:
            del acked["a-0"]
        assert_all_there(srv, acked)

        # A batch accepted with a little room, whose documents do not fit:
        # its items wait for space (neither failed nor retried in a loop).
        spare.unlink()
        batch = {f"j-{i}": text_of(rng, f"tagj{i}", 2000) for i in range(12)}
        status, body = srv.request("POST", "/v1/collections/c/documents:batch",
                                   {"documents": [{"id": k, "text": v}
                                                  for k, v in batch.items()]})
        assert status == 202, body
        job = body["job_id"]
        deadline = time.monotonic() + 60
        while "waits" not in srv.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        status, body = srv.request("GET", f"/v1/jobs/{job}")
        assert body["state"] == "running" and body["counts"]["failed"] == 0, body
        assert "waits" in srv.stderr_text(), body
        time.sleep(3)
        waits = srv.stderr_text().count("waits")
        assert waits <= 10, f"{waits} retries in 3 s: the worker spins"

        # Space returns: ingest works again, nothing acknowledged was lost.
        filler.unlink()
        for i in range(3):
            status, body = ingest(f"d-{i}", 2000)
            assert status == 201, body
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, body = srv.request("GET", f"/v1/jobs/{job}")
            if body["state"] != "running":
                break
            time.sleep(0.5)
        assert body["state"] == "succeeded" and body["counts"]["failed"] == 0, body
        acked.update(batch)
        assert_all_there(srv, acked)

        # A shutdown on a full disk: the snapshot cannot be written, the
        # previous one stays as it was and no partial file is left.
        before = sha(snap)
        # What the disk holds now, for a failure's report (stdout is shown then).
        print("before the shutdown fill:", {str(p.relative_to(tmpfs)): p.stat().st_size
                                             for p in tmpfs.rglob("*") if p.is_file()})
        fill(filler, 0)
        srv.stop()
        assert "snapshot not saved" in srv.stderr_text(), srv.stderr_text()[-3000:]
        assert sha(snap) == before
        assert not list((data / "index").glob("*.tmp"))
        filler.unlink()
        srv.start()
        assert not [l for l in srv.log_lines() if "rebuilding" in l.get("msg", "")], \
            srv.stderr_text()[-3000:]
        assert_all_there(srv, acked)
        assert ingest("e-0", 100)[0] == 201
        srv.stop()
    finally:
        if srv.proc is not None:
            srv.stop(check=False)
        for f in (filler, spare):
            if f.exists():
                f.unlink()
    assert not srv.problems, srv.problems
