"""
End-to-end tests of the ragd command line: ingest, search, embed, and a
server following writes that the CLI makes to the same data dir.
"""
import json
import math
import time

import pytest

from conftest import SLOW, run_cli

SOURDOUGH = ("Sourdough bread is leavened with a starter of wild yeast and lactic acid "
             "bacteria. The long fermentation gives the loaf its tangy flavour.")
VOLCANO = ("Volcanoes form where molten rock from the mantle pushes up through cracks in the "
           "crust. Eruptions eject lava, ash and toxic gases.")
PENGUINS = ("Penguins are flightless seabirds of the Southern Hemisphere. Emperor penguins "
            "breed during the Antarctic winter.")


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "bread.txt").write_text(SOURDOUGH)
    (d / "volcano.md").write_text(VOLCANO)
    (d / "my notes (1).txt").write_text(PENGUINS)
    return d


def test_ingest_then_search(tmp_path, files):
    data = tmp_path / "data"
    res = run_cli("ingest", "--collection", "kb", str(files / "bread.txt"),
                  str(files / "volcano.md"), data_dir=data)
    lines = res.json_lines()
    assert len(lines) == 2, res
    assert [l["id"] for l in lines] == ["bread.txt", "volcano.md"]
    assert all(l["collection"] == "kb" and l["chunks"] >= 1 for l in lines), lines

    res = run_cli("search", "--collection", "kb", "--json", "--top-k", "2",
                  "how do you make tangy fermented loaves", data_dir=data)
    hits = res.json_lines()
    assert len(hits) == 2, res
    assert hits[0]["document_id"] == "bread.txt"
    assert hits[0]["text"] == SOURDOUGH
    assert hits[0]["score"] > hits[1]["score"]

    res = run_cli("search", "--collection", "kb", "--json", "--top-k", "1",
                  "mountains that explode and spew magma", data_dir=data)
    hits = res.json_lines()
    assert len(hits) == 1 and hits[0]["document_id"] == "volcano.md", res

    # human-readable output names the document too
    res = run_cli("search", "--collection", "kb", "mountains that explode", data_dir=data)
    assert "volcano.md" in res.stdout.splitlines()[0], res


def test_ingest_defaults_and_replace(tmp_path, files):
    data = tmp_path / "data"
    res = run_cli("ingest", str(files / "my notes (1).txt"), data_dir=data)
    (line,) = res.json_lines()
    assert line["collection"] == "default"
    doc_id = line["id"]
    assert doc_id == "my_notes__1_.txt", line  # characters an id may not hold become '_'
    res = run_cli("search", "--json", "birds that cannot fly", data_dir=data)
    assert res.json_lines()[0]["document_id"] == doc_id

    # ingesting under the same id replaces the document
    run_cli("ingest", "--id", doc_id, str(files / "bread.txt"), data_dir=data)
    hits = run_cli("search", "--json", "--top-k", "10", "birds that cannot fly",
                   data_dir=data).json_lines()
    assert [h["document_id"] for h in hits] == [doc_id], hits
    assert hits[0]["text"] == SOURDOUGH

    # --id with explicit id
    res = run_cli("ingest", "--collection", "other", "--id", "custom:id-1",
                  str(files / "volcano.md"), data_dir=data)
    assert res.json_lines()[0]["id"] == "custom:id-1"


def test_ingest_missing_file(tmp_path, files):
    data = tmp_path / "data"
    missing = tmp_path / "does-not-exist.txt"
    res = run_cli("ingest", "--collection", "kb", str(missing), data_dir=data, expect_ok=False)
    assert res.returncode != 0, res
    assert str(missing) in res.stderr or "does-not-exist" in res.stderr, res
    assert res.stdout.strip() == "", res

    # one good file and one missing: the good one is stored, exit is still non-zero
    res = run_cli("ingest", "--collection", "kb", str(files / "bread.txt"), str(missing),
                  data_dir=data, expect_ok=False)
    assert res.returncode != 0, res
    assert [l["id"] for l in res.json_lines()] == ["bread.txt"]
    hits = run_cli("search", "--collection", "kb", "--json", "bread",
                   data_dir=data).json_lines()
    assert [h["document_id"] for h in hits] == ["bread.txt"]


def test_cli_errors(tmp_path, files):
    data = tmp_path / "data"
    run_cli("ingest", "--collection", "kb", str(files / "bread.txt"), data_dir=data)
    cases = [
        ("search", "--collection", "nope", "anything"),   # unknown collection
        ("search", "--collection", "kb", "--top-k", "0", "bread"),
        ("search", "--collection", "kb", "--top-k", "abc", "bread"),
        ("search", "--collection", "kb", ""),             # empty query
        ("search", "--collection", "kb"),                 # no query
        ("embed",),                                        # nothing to embed
        ("ingest",),                                       # nothing to ingest
        ("ingest", "--collection", "bad name", str(files / "bread.txt")),
        ("ingest", "--id", "bad id!", str(files / "bread.txt")),
        ("ingest", "--id", "x", str(files / "bread.txt"), str(files / "volcano.md")),
        ("frobnicate",),
    ]
    for args in cases:
        res = run_cli(*args, data_dir=data, expect_ok=False)
        assert res.returncode != 0, res
        assert res.stderr.strip(), res
    # the failed ingests stored nothing
    hits = run_cli("search", "--collection", "kb", "--json", "--top-k", "100", "anything",
                   data_dir=data).json_lines()
    assert [h["document_id"] for h in hits] == ["bread.txt"]


def test_empty_file_is_rejected(tmp_path):
    data = tmp_path / "data"
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    res = run_cli("ingest", "--collection", "kb", str(empty), data_dir=data, expect_ok=False)
    assert res.returncode != 0 and res.stderr.strip(), res


def test_server_follows_cli_ingest(tmp_path, ragd_factory, files):
    srv = ragd_factory()
    srv.create_collection("shared")
    srv.add_doc("shared", VOLCANO, "volcano")
    assert [h["document_id"] for h in srv.search("shared", "fermented bread", 10)] == ["volcano"]

    t0 = time.monotonic()
    run_cli("ingest", "--collection", "shared", str(files / "bread.txt"), data_dir=srv.data_dir)
    t_ingested = time.monotonic()

    def wait_for(coll, query, doc_id, timeout=5.0 * SLOW):
        deadline = time.monotonic() + timeout
        while True:
            st, body = srv.request("POST", f"/v1/collections/{coll}/search",
                                   {"query": query, "top_k": 10})
            if st == 200 and body["results"] and body["results"][0]["document_id"] == doc_id:
                return time.monotonic(), body["results"]
            assert time.monotonic() < deadline, f"server never saw {doc_id} in {coll}: {st} {body}"
            time.sleep(0.1)

    seen_at, hits = wait_for("shared", "how do you make tangy fermented loaves", "bread.txt")
    lag = seen_at - t_ingested
    print(f"\nserver saw the CLI ingest {lag:.2f}s after the CLI exited "
          f"(CLI run took {t_ingested - t0:.2f}s)")
    assert lag <= 2.5 * SLOW, lag
    assert hits[0]["text"] == SOURDOUGH
    st, doc = srv.request("GET", "/v1/collections/shared/documents/bread.txt")
    assert st == 200 and doc["text"] == SOURDOUGH, doc
    assert srv.collection("shared")["vectors"] == 2

    # a collection the CLI creates appears on the server too
    run_cli("ingest", "--collection", "cli-made", str(files / "my notes (1).txt"),
            data_dir=srv.data_dir)
    deadline = time.monotonic() + 5
    while True:
        st, body = srv.request("GET", "/v1/collections/cli-made")
        if st == 200 and body["vectors"] == 1:
            break
        assert time.monotonic() < deadline, (st, body)
        time.sleep(0.1)
    wait_for("cli-made", "birds that cannot fly", "my_notes__1_.txt")

    # and the server's own writes are visible to the CLI
    srv.add_doc("shared", PENGUINS, "penguins")
    hits = run_cli("search", "--collection", "shared", "--json", "birds that cannot fly",
                   data_dir=srv.data_dir).json_lines()
    assert hits[0]["document_id"] == "penguins", hits

    # the server keeps what it followed across a restart
    srv.restart()
    assert srv.search("shared", "how do you make tangy fermented loaves", 1)[0]["document_id"] \
        == "bread.txt"
    assert srv.collection("shared")["vectors"] == 3


def test_embed_unit_norm(tmp_path):
    texts = ["hello world", "The quick brown fox jumps over the lazy dog.",
             "東京は日本の首都です。", "a"]
    res = run_cli("embed", *texts, data_dir=tmp_path / "data")
    lines = [l for l in res.stdout.splitlines() if l.strip()]
    assert len(lines) == len(texts), res
    vecs = [json.loads(l) for l in lines]
    for v in vecs:
        assert isinstance(v, list) and len(v) == 384
        assert all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)
        norm = math.sqrt(sum(x * x for x in v))
        assert abs(norm - 1.0) < 1e-3, norm
    # deterministic, and different texts give different vectors
    again = json.loads(run_cli("embed", texts[0], data_dir=tmp_path / "data").stdout)
    assert max(abs(a - b) for a, b in zip(again, vecs[0])) < 1e-6
    assert vecs[0] != vecs[1]


def test_server_follows_cli_replace(tmp_path, ragd_factory, files):
    """A CLI re-ingest under an existing id replaces the document on the
    server too: the old text disappears from its results."""
    srv = ragd_factory()
    srv.create_collection("rep")
    srv.add_doc("rep", PENGUINS, "doc1")
    srv.add_doc("rep", SOURDOUGH, "doc2")
    run_cli("ingest", "--collection", "rep", "--id", "doc1", str(files / "volcano.md"),
            data_dir=srv.data_dir)
    deadline = time.monotonic() + 5
    while True:
        hits = srv.search("rep", "birds that cannot fly", top_k=100)
        texts = {h["document_id"]: h["text"] for h in hits}
        if texts.get("doc1") == VOLCANO:
            break
        assert time.monotonic() < deadline, hits
        time.sleep(0.1)
    assert PENGUINS not in texts.values() and len(hits) == 2, hits
    assert srv.collection("rep")["vectors"] == 2
