"""
Crash safety: ragd killed with SIGKILL at random moments while loader
threads ingest, upsert and delete documents over HTTP, restarted each time.

The loaders record every operation the server acknowledged (2xx). One that
got no answer (the kill cut it off) may or may not have committed, so the
document's allowed states grow by one; an acknowledged operation makes its
state certain again. After the last restart every document must be in one
of its allowed states: acknowledged text exactly (GET), its chunks all from
that one version (each chunk's text is the version's text at the chunk's
offsets, ordinals 0..n-1, ids contiguous), found by lexical search on its
version's tag, every chunk in the vector index (a dense search filtered to
the document returns exactly its chunks) and a chunk's text finding that
chunk unfiltered (exact for flat; for hnsw, misses within its approximate
recall are counted, not failed); deleted documents and replaced versions
not found; and the store's chunk count equal to
both indexes' (GET /v1/collections/{name}/check).

Kills land while documents are written, during start-up (snapshot load and
change-log replay), and during shutdown (SIGTERM, then SIGKILL during the
drain and the snapshot writes); some cycles shut down cleanly so that later
ones start from a snapshot and replay the log after it.

RAGD_CRASH_CYCLES sets the number of cycles (default 100: about 4 minutes
here, on the release and the ASan build alike), RAGD_CRASH_SEED the seed.
"""
import os
import random
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import RagdServer, free_port, http_request, ragd_env

SEED = int(os.environ.get("RAGD_CRASH_SEED", "20261127"))
LOADERS = 2
REQUEST_TIMEOUT_S = 30


def cycles():
    return int(os.environ.get("RAGD_CRASH_CYCLES", "100"))


class CrashServer(RagdServer):
    """A RagdServer that can also be spawned without waiting for ready (to
    be killed during start-up) and killed during its shutdown."""

    def spawn(self):
        assert self.proc is None
        self.port = free_port()
        self.runs += 1
        self.stderr_path = self.log_dir / f"ragd-{self.port}-run{self.runs}.stderr"
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._stderr_file,
                                     stderr=subprocess.STDOUT, env=ragd_env(self.env))

    def term_then_kill(self, delay, on_term=None):
        """SIGTERM, then SIGKILL after delay seconds unless it exited."""
        self.proc.send_signal(signal.SIGTERM)
        if on_term:
            on_term()
        try:
            rc = self.proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            self.kill()
            return "killed"
        self.proc = None
        self._stderr_file.close()
        assert rc == 0, f"exit {rc} after SIGTERM:\n{self.stderr_text()[-4000:]}"
        return "exited"


# -- documents ----------------------------------------------------------------

class Corpus:
    """Texts made of pseudo-words, each sentence ending with its version's
    tag, so that every chunk of a version names that version and no other."""

    def __init__(self, rng):
        letters = "bcdfghjklmnprstvwz"
        vowels = "aeiou"
        self.words = ["".join(rng.choice(letters) + rng.choice(vowels)
                              for _ in range(rng.randint(2, 4))) for _ in range(3000)]

    @staticmethod
    def tag(doc_id, version):
        # One token for the lexical tokenizer: letters and digits only.
        return "tg" + doc_id.replace("-", "q") + "v" + str(version)

    def text(self, rng, doc_id, version):
        n = rng.choice([1, 1, 1, 2, 2, 3, 5, 8, 20])
        tag = self.tag(doc_id, version)
        sentences = []
        for _ in range(n):
            words = rng.sample(self.words, rng.randint(6, 14))
            sentences.append(" ".join(words).capitalize() + " " + tag + ".")
        return " ".join(sentences)


class Doc:
    """A document's possible states: texts (None: absent). More than one
    while an unanswered operation may or may not have committed."""

    def __init__(self, doc_id, coll):
        self.id, self.coll = doc_id, coll
        self.states = [None]
        self.version = 0
        self.versions = {}  # text -> version number, for its tag

    def present(self):
        return any(s is not None for s in self.states)


class Loader(threading.Thread):
    def __init__(self, index, ctx):
        super().__init__(daemon=True)
        self.index, self.ctx = index, ctx
        self.rng = random.Random(SEED * 31 + index)
        self.docs = []
        self.acked = 0
        self.unanswered = 0
        self.unanswered_by = {}
        self.failures = []  # unexpected statuses

    def request(self, method, path, body=None):
        port = self.ctx.port
        try:
            status, parsed, _ = http_request("127.0.0.1", port, method, path, body,
                                             timeout=REQUEST_TIMEOUT_S)
            return status, parsed
        except OSError:
            return None, None

    def run(self):
        ctx = self.ctx
        n_new = 0
        while not ctx.stop.is_set():
            if not ctx.up.wait(0.05):
                continue
            live = [d for d in self.docs if d.present()]
            r = self.rng.random()
            if r < 0.55 or len(live) < 3:
                doc = Doc(f"w{self.index}-{n_new}", self.rng.choice(ctx.collections))
                n_new += 1
                self.docs.append(doc)
                op = "put"
            elif r < 0.85:
                doc, op = self.rng.choice(live), "put"
            else:
                doc, op = self.rng.choice(live), "delete"
            path = f"/v1/collections/{doc.coll}/documents"
            if op == "put":
                doc.version += 1
                target = ctx.corpus.text(self.rng, doc.id, doc.version)
                doc.versions[target] = doc.version
                status, body = self.request("POST", path, {"id": doc.id, "text": target,
                                                           "metadata": {"doc": doc.id}})
                ok = status in (200, 201)
            else:
                target = None
                status, body = self.request("DELETE", f"{path}/{doc.id}")
                ok = status == 200
                if status == 404:  # certain: it is not there (an unanswered put never landed)
                    doc.states = [None]
                    continue
            if ok:
                doc.states = [target]
                self.acked += 1
            elif status is None or status == 503:
                time.sleep(0.05)  # the kill may not have been noticed yet
                # Cut off by a kill, or refused while starting or draining:
                # it may or may not have happened.
                if target not in doc.states:
                    doc.states.append(target)
                self.unanswered += 1
                self.unanswered_by[status] = self.unanswered_by.get(status, 0) + 1
            else:
                self.failures.append((op, doc.id, status, body))
                if target not in doc.states:
                    doc.states.append(target)


class Ctx:
    def __init__(self, corpus, collections):
        self.corpus, self.collections = corpus, collections
        self.up = threading.Event()
        self.stop = threading.Event()
        self.port = None


# -- verification -------------------------------------------------------------

def listed_ids(srv, coll):
    ids, cursor = set(), None
    while True:
        q = "limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, body = srv.request("GET", f"/v1/collections/{coll}/documents?{q}")
        assert status == 200, body
        ids.update(d["id"] for d in body["documents"])
        cursor = body.get("next_cursor")
        if not cursor:
            return ids


def search(srv, coll, query, mode, top_k, flt=None):
    req = {"query": query, "mode": mode, "top_k": top_k}
    if flt:
        req["filter"] = flt
    status, body = srv.request("POST", f"/v1/collections/{coll}/search", req)
    assert status == 200, (coll, query, mode, body)
    return body["results"]


def verify(srv, docs, collections, corpus):
    """Checks every document against its allowed states; returns counts.
    Documents are written with metadata {"doc": their id}."""
    problems = []
    by_coll = {c: [d for d in docs if d.coll == c] for c in collections}
    stats = {"present": 0, "absent": 0, "uncertain": 0, "chunks": 0}
    ann_misses, probes = [], {c: 0 for c in collections}
    for coll in collections:
        listed = listed_ids(srv, coll)
        known = {d.id for d in by_coll[coll]}
        for extra in sorted(listed - known):
            problems.append(f"{coll}: document {extra!r} was never written")
        n_chunks = 0
        for doc in by_coll[coll]:
            if len(doc.states) > 1:
                stats["uncertain"] += 1
            status, body = srv.request("GET", f"/v1/collections/{coll}/documents/{doc.id}")
            if status == 404:
                stats["absent"] += 1
                if None not in doc.states:
                    problems.append(f"{coll}/{doc.id}: acknowledged but missing")
                if doc.id in listed:
                    problems.append(f"{coll}/{doc.id}: listed but GET says 404")
                for text, version in doc.versions.items():
                    hits = search(srv, coll, corpus.tag(doc.id, version), "lexical", 3)
                    if hits:
                        problems.append(f"{coll}/{doc.id}: deleted, but lexical search finds "
                                        f"version {version}: {hits[0]['chunk_id']}")
                continue
            assert status == 200, body
            stats["present"] += 1
            text = body["text"]
            if text not in doc.states:
                problems.append(f"{coll}/{doc.id}: text is no version it may have "
                                f"({len(doc.states)} allowed)")
                continue
            if doc.id not in listed:
                problems.append(f"{coll}/{doc.id}: present but not listed")
            version = doc.versions[text]
            st, ch = srv.request("GET", f"/v1/collections/{coll}/documents/{doc.id}/chunks")
            assert st == 200, ch
            chunks = ch["chunks"]
            n_chunks += len(chunks)
            raw = text.encode()
            if len(chunks) != body["chunks"] or not chunks:
                problems.append(f"{coll}/{doc.id}: {len(chunks)} chunks, document says "
                                f"{body['chunks']}")
            if [c["ordinal"] for c in chunks] != list(range(len(chunks))):
                problems.append(f"{coll}/{doc.id}: ordinals {[c['ordinal'] for c in chunks]}")
            ids = [c["chunk_id"] for c in chunks]
            if ids and ids != list(range(ids[0], ids[0] + len(ids))):
                problems.append(f"{coll}/{doc.id}: chunk ids not contiguous: {ids}")
            for c in chunks:
                if raw[c["start"]:c["end"]].decode(errors="replace") != c["text"]:
                    problems.append(f"{coll}/{doc.id}: chunk {c['ordinal']} is not the "
                                    f"document's text at {c['start']}..{c['end']}: a chunk "
                                    "of another version")
            # Lexical: the version's tag finds this document and nothing else.
            hits = search(srv, coll, corpus.tag(doc.id, version), "lexical", 5)
            if not hits or any(h["document_id"] != doc.id for h in hits):
                problems.append(f"{coll}/{doc.id}: lexical search for its tag gives "
                                f"{[h['document_id'] for h in hits]}")
            for old, v in doc.versions.items():
                if v != version and search(srv, coll, corpus.tag(doc.id, v), "lexical", 3):
                    problems.append(f"{coll}/{doc.id}: lexical search finds replaced "
                                    f"version {v}")
            # Dense: every chunk is in the vector index. A filtered search
            # returns k results whenever k match (hnsw falls back to an exact
            # scan), so asking for one more than the document has must give
            # exactly its chunks, whatever the graph's recall.
            got = search(srv, coll, chunks[0]["text"], "dense", len(chunks) + 1,
                         {"doc": doc.id})
            if sorted(h["chunk_id"] for h in got) != ids:
                problems.append(f"{coll}/{doc.id}: the vector index holds chunks "
                                f"{sorted(h['chunk_id'] for h in got)}, the store {ids}")
            # Dense, unfiltered: a chunk's own text finds that chunk; exact for
            # flat, a recall figure for hnsw (approximate: a rare miss is allowed).
            probe = chunks[len(chunks) // 2]
            hits = search(srv, coll, probe["text"], "dense", 10 if coll == "hnsw" else 3)
            if probe["chunk_id"] not in [h["chunk_id"] for h in hits]:
                miss = (f"{coll}/{doc.id}: dense search for chunk "
                        f"{probe['chunk_id']}'s text gives "
                        f"{[(h['chunk_id'], h['score']) for h in hits]}")
                (ann_misses if coll == "hnsw" else problems).append(miss)
            probes[coll] += 1
        stats["chunks"] += n_chunks
        st, chk = srv.request("GET", f"/v1/collections/{coll}/check")
        assert st == 200, chk
        if not chk["consistent"] or chk["store_chunks"] != n_chunks:
            problems.append(f"{coll}: indexes disagree with the store: {chk}, "
                            f"{n_chunks} chunks listed")
        info = srv.collection(coll)
        if info["vectors"] != n_chunks:
            problems.append(f"{coll}: {info['vectors']} vectors, {n_chunks} chunks")
    # ef_search 64 on a few thousand vectors with churn: recall@10 of a
    # self-match is well above 98 %; below that the graph is damaged.
    stats["hnsw_self_misses"] = len(ann_misses)
    if len(ann_misses) > max(1, probes.get("hnsw", 0) // 50):
        problems.extend(ann_misses)
    return problems, stats


# -- the test -----------------------------------------------------------------

def test_kill_9_during_sustained_ingest(tmp_path):
    n_cycles = cycles()
    rng = random.Random(SEED)
    srv = CrashServer(tmp_path / "data", tmp_path, ["--set", "models.generator="])
    srv.start()
    collections = ["flat", "hnsw"]
    srv.create_collection("flat", chunk_size=64, chunk_overlap=8)
    srv.create_collection("hnsw", chunk_size=64, chunk_overlap=8,
                          index={"type": "hnsw", "m": 16, "ef_construction": 64,
                                 "ef_search": 64})
    corpus = Corpus(random.Random(SEED + 1))
    ctx = Ctx(corpus, collections)
    ctx.port = srv.port
    loaders = [Loader(i, ctx) for i in range(LOADERS)]
    for t in loaders:
        t.start()
    modes = {"write": 0, "startup": 0, "shutdown": 0, "clean": 0}
    torn_shutdowns = 0
    startup_cut = 0  # kills before the indexes were loaded
    t0 = time.monotonic()
    try:
        for cycle in range(n_cycles):
            r = rng.random()
            mode = ("write" if r < 0.7 else "startup" if r < 0.8
                    else "shutdown" if r < 0.9 else "clean")
            modes[mode] += 1
            if srv.proc is None:
                if mode == "startup":
                    srv.spawn()
                    if rng.random() < 0.5:
                        time.sleep(rng.uniform(0.0, 1.5))
                    else:  # aim at the index load: it follows the model's
                        deadline = time.monotonic() + 30
                        while ("embedder" not in srv.stderr_text()
                               and time.monotonic() < deadline):
                            time.sleep(0.002)
                        time.sleep(rng.uniform(0.0, 0.02))
                    srv.kill()
                    if "indexes loaded" not in srv.stderr_text():
                        startup_cut += 1
                    continue
                srv.start()
            ctx.port = srv.port
            ctx.up.set()
            time.sleep(rng.uniform(0.05, 1.5))
            if mode in ("write", "startup"):
                ctx.up.clear()
                srv.kill()
            elif mode == "shutdown":
                # Requests in flight are drained (new ones are refused);
                # SIGKILL lands in the drain or in the snapshot writes.
                if srv.term_then_kill(rng.uniform(0.0, 0.4), ctx.up.clear) == "killed":
                    torn_shutdowns += 1
                if srv.proc is not None:
                    srv.kill()
            else:
                ctx.up.clear()
                srv.stop()
        ctx.stop.set()
        for t in loaders:
            t.join(REQUEST_TIMEOUT_S + 5)
        srv.start()
        elapsed = time.monotonic() - t0
        docs = [d for t in loaders for d in t.docs]
        problems, stats = verify(srv, docs, collections, corpus)
        acked = sum(t.acked for t in loaders)
        unanswered = sum(t.unanswered for t in loaders)
        print(f"\n{n_cycles} cycles in {elapsed:.0f} s ({modes}, {startup_cut} start-ups cut "
              f"before the indexes were loaded, {torn_shutdowns} shutdowns "
              f"cut by SIGKILL); {acked} operations acknowledged, {unanswered} unanswered {[t.unanswered_by for t in loaders]}; "
              f"{len(docs)} documents: {stats}; verified in "
              f"{time.monotonic() - t0 - elapsed:.0f} s")
        failures = [f for t in loaders for f in t.failures]
        assert not failures, f"unexpected statuses: {failures[:10]}"
        assert acked > n_cycles, "the loaders hardly wrote anything: the test proves little"
        assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])
    finally:
        ctx.stop.set()
        ctx.up.set()
        if srv.proc is not None:
            srv.stop(check=False)
        if srv.problems:
            pytest.fail("\n".join(srv.problems), pytrace=False)


def test_snapshot_then_replay_after_kill(tmp_path):
    """A clean stop writes snapshots at seq S; writes after S, a SIGKILL,
    and a torn snapshot file left by a kill mid-write: the restart loads
    the snapshot, replays the log after S, and matches the store."""
    srv = CrashServer(tmp_path / "data", tmp_path, ["--set", "models.generator="])
    srv.start()
    srv.create_collection("c", chunk_size=64, chunk_overlap=8)
    corpus = Corpus(random.Random(7))
    rng = random.Random(8)
    docs = {}
    for i in range(20):
        d = Doc(f"d-{i}", "c")
        d.version = 1
        text = corpus.text(rng, d.id, 1)
        d.versions[text] = 1
        d.states = [text]
        srv.add_doc("c", text, doc_id=d.id, metadata={"doc": d.id})
        docs[d.id] = d
    srv.stop()
    snaps = list((tmp_path / "data" / "index").glob("*.vidx"))
    assert snaps, "no snapshot written at shutdown"
    srv.start()
    for i in range(0, 20, 3):  # upserts after the snapshot
        d = docs[f"d-{i}"]
        d.version += 1
        text = corpus.text(rng, d.id, d.version)
        d.versions[text] = d.version
        d.states = [text]
        srv.add_doc("c", text, doc_id=d.id, metadata={"doc": d.id})
    for i in range(1, 20, 4):  # and deletes
        assert srv.request("DELETE", f"/v1/collections/c/documents/d-{i}")[0] == 200
        docs[f"d-{i}"].states = [None]
    srv.kill()
    # What a kill during a snapshot write leaves: a partial .tmp beside the
    # good snapshot. It must be ignored (and later overwritten).
    for s in snaps:
        Path(str(s) + ".tmp").write_bytes(s.read_bytes()[: s.stat().st_size // 2])
    srv.start()
    lines = [l for l in srv.log_lines() if "rebuilding" in l.get("msg", "")]
    assert not lines, f"the snapshot was not used: {lines}"
    problems, stats = verify(srv, list(docs.values()), ["c"], corpus)
    assert not problems, "\n".join(problems)
    srv.stop()
    # A torn snapshot (not renamed atomically, e.g. copied by hand) is
    # refused with a message, and the index is rebuilt from the store.
    for s in snaps:
        data = s.read_bytes()
        s.write_bytes(data[: len(data) - 100])
    srv.start()
    assert any("unusable" in l.get("msg", "") for l in srv.log_lines()), srv.stderr_text()[-2000:]
    problems, _ = verify(srv, list(docs.values()), ["c"], corpus)
    assert not problems, "\n".join(problems)
    srv.stop()


def test_snapshot_of_deleted_collection_swept(tmp_path):
    """A kill between a collection's delete and the removal of its snapshot
    would leave the file for good: the next start removes it (and leaves
    the live collections' snapshots)."""
    srv = CrashServer(tmp_path / "data", tmp_path, ["--set", "models.generator="])
    srv.start()
    for name in ("gone", "kept"):
        srv.create_collection(name)
        srv.add_doc(name, f"A document of collection {name}.", doc_id="d")
    srv.stop()
    index = tmp_path / "data" / "index"
    snaps = {p.name: p.read_bytes() for p in index.glob("*.vidx")}
    assert len(snaps) == 2, snaps.keys()
    srv.start()
    assert srv.request("DELETE", "/v1/collections/gone")[0] == 200
    srv.kill()
    left = {p.name for p in index.glob("*.vidx")}
    (old_id,) = set(snaps) - left  # the delete removed it: put it back, as if killed before
    (index / old_id).write_bytes(snaps[old_id])
    (index / (old_id + ".tmp")).write_bytes(snaps[old_id][:100])
    srv.start()
    assert sorted(p.name for p in index.iterdir()) == sorted(left), list(index.iterdir())
    assert srv.search("kept", "document", mode="lexical")
    assert srv.request("GET", "/v1/collections/gone")[0] == 404
    srv.stop()
