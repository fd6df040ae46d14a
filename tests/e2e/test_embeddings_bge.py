"""
bge-small-en-v1.5, ragd's second embedding model (`make models` converts it
from its ONNX export): ragd's vectors against onnxruntime's on the original
ONNX file (tests/fixtures/embed_reference_bge.json, written by
tools/make_bge_reference.py), cosine > 0.999 for every text, including one
cut at 512 tokens and Unicode; search queries get the model's query prefix,
documents do not.

The model file is produced by `make models`; these tests fail when it is
missing unless RAGD_SKIP_BGE is set (to anything but 0), in which case they
skip.
"""
import json
import math
import os
from pathlib import Path

import pytest

from conftest import REPO, run_cli

BGE = Path(os.environ.get("RAGD_BGE_MODEL", REPO / "models" / "bge-small-en-v1.5.gguf"))
REFERENCE = REPO / "tests" / "fixtures" / "embed_reference_bge.json"
PREFIX = "Represent this sentence for searching relevant passages: "
MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def bge():
    if not BGE.is_file():
        if os.environ.get("RAGD_SKIP_BGE", "0") not in ("", "0"):
            pytest.skip(f"{BGE} absent and RAGD_SKIP_BGE is set")
        pytest.fail(f"{BGE} is missing: run `make models` (or set RAGD_SKIP_BGE=1 to skip)")
    return str(BGE)


@pytest.fixture(scope="module")
def reference():
    with open(REFERENCE, encoding="utf-8") as f:
        ref = json.load(f)
    assert ref["query_prefix"] == PREFIX
    return ref["sentences"]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def cosine(a, b):
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def embed(model, texts, tmp_path, query=False):
    args = ["embed", "--model", model] + (["--query"] if query else []) + ["--", *texts]
    vecs = run_cli(*args, data_dir=tmp_path / "data").json_lines()
    assert len(vecs) == len(texts)
    return vecs


def check(reference, got, label):
    worst = sorted((cosine(g, s["embedding"]), s["text"]) for g, s in zip(got, reference))
    print(f"\nbge {label}: {len(worst)} texts, min cosine {worst[0][0]:.6f} "
          f"({worst[0][1][:60]!r}), mean {sum(c for c, _ in worst) / len(worst):.6f}")
    bad = [(round(c, 6), t[:80]) for c, t in worst if c <= MIN_COSINE]
    assert not bad, f"cosine <= {MIN_COSINE} for: {bad}"


def test_documents_match_onnxruntime(bge, reference, tmp_path):
    docs = [s for s in reference if not s["query"]]
    assert any(s["n_tokens"] > 512 for s in docs), "the fixture must hold a truncated text"
    got = embed(bge, [s["text"] for s in docs], tmp_path)
    assert all(len(v) == 384 for v in got)
    assert all(abs(dot(v, v) - 1) < 1e-4 for v in got), "vectors must be L2-normalised"
    check(docs, got, "documents")


def test_queries_match_onnxruntime_with_the_prefix(bge, reference, tmp_path):
    queries = [s for s in reference if s["query"]]
    got = embed(bge, [s["text"] for s in queries], tmp_path, query=True)
    check(queries, got, "queries")
    # --query is exactly the prefix glued on, and it changes the vector
    glued = embed(bge, [PREFIX + s["text"] for s in queries], tmp_path)
    plain = embed(bge, [s["text"] for s in queries], tmp_path)
    for q, g, p in zip(got, glued, plain):
        assert cosine(q, g) > 0.99999
        assert cosine(q, p) < 0.99


def test_truncation_ignores_the_tail(bge, reference, tmp_path):
    long = next(s["text"] for s in reference if s["n_tokens"] > 600)
    a, b = embed(bge, [long, long + " A different ending, far past the cut."], tmp_path)
    assert cosine(a, b) > 0.999999


def test_minilm_has_no_query_prefix(tmp_path):
    text = "What is the capital of France?"
    (q,) = run_cli("embed", "--query", "--", text, data_dir=tmp_path / "d").json_lines()
    (d,) = run_cli("embed", "--", text, data_dir=tmp_path / "d").json_lines()
    assert q == d


def test_dense_search_embeds_the_query_with_the_prefix(bge, ragd_factory, tmp_path):
    doc = "Paris is the capital and most populous city of France."
    query = "What is the capital of France?"
    srv = ragd_factory(extra_args=("--model", bge))
    srv.create_collection("bge")
    srv.add_doc("bge", doc, "paris")
    status, body = srv.request("POST", "/v1/collections/bge/search",
                               {"query": query, "top_k": 1, "mode": "dense"})
    assert status == 200, body
    (hit,) = body["results"]
    (dv,) = embed(bge, [doc], tmp_path)
    (qv,) = embed(bge, [query], tmp_path, query=True)
    (plain,) = embed(bge, [query], tmp_path)
    assert hit["score"] == pytest.approx(dot(qv, dv), abs=1e-4)
    assert abs(dot(plain, dv) - dot(qv, dv)) > 1e-3, "prefix should move the score"


def test_cli_search_uses_the_prefix(bge, tmp_path):
    doc = tmp_path / "paris.txt"
    doc.write_text("Paris is the capital and most populous city of France.\n")
    data = tmp_path / "data"
    run_cli("ingest", "--model", bge, "--collection", "c", str(doc), data_dir=data)
    res = run_cli("search", "--model", bge, "--collection", "c", "--mode", "dense", "--json",
                  "What is the capital of France?", data_dir=data)
    (hit,) = res.json_lines()
    (dv,) = embed(bge, [doc.read_text()], tmp_path)
    (qv,) = embed(bge, ["What is the capital of France?"], tmp_path, query=True)
    assert hit["score"] == pytest.approx(dot(qv, dv), abs=1e-4)
