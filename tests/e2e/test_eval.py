"""
`ragd eval` on a small BEIR dataset: the table and the JSON it writes, and
its metrics agree with pytrec_eval (the tool BEIR uses) on the same run to
4 decimals.
"""
import json
import os
from pathlib import Path

import pytest

from conftest import REPO, run_cli

ADI = Path(os.environ.get("RAGD_DATASETS", REPO.parent / "shared" / "datasets")) / "adi"


def read_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def read_run(path):
    runs = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            qid, _, did, rank, score, mode = line.split()
            runs.setdefault(mode, {}).setdefault(qid, {})[did] = float(score)
    return runs


@pytest.mark.skipif(not ADI.is_dir(), reason=f"BEIR dataset not found at {ADI}")
def test_eval_agrees_with_pytrec_eval(tmp_path):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    out_json, out_run = tmp_path / "adi.json", tmp_path / "adi.run"
    res = run_cli("eval", "--dataset", str(ADI), "--json", str(out_json), "--run", str(out_run))
    assert "| adi | dense |" in res.stdout and "| adi | hybrid |" in res.stdout, res
    report = json.loads(out_json.read_text())
    assert report["dataset"] == "adi" and set(report["modes"]) == {"lexical", "dense", "hybrid"}
    assert report["ingest"]["docs_per_s"] > 0 and report["ingest"]["chunks_per_s"] > 0
    qrels = read_qrels(ADI / "qrels" / "test.tsv")
    runs = read_run(out_run)
    for mode, m in report["modes"].items():
        assert m["qps"] > 0
        # dense retrieval with a sentence embedder is far from random on ADI
        assert m["ndcg@10"] > 0.3, (mode, m)
        ev = pytrec_eval.RelevanceEvaluator(
            {q: r for q, r in qrels.items() if q in runs[mode]},
            {"ndcg_cut.10", "recall.100", "recip_rank"})
        per_query = ev.evaluate(runs[mode])
        n = len(per_query)
        assert n == report["queries"]
        ndcg = sum(v["ndcg_cut_10"] for v in per_query.values()) / n
        recall = sum(v["recall_100"] for v in per_query.values()) / n
        assert m["ndcg@10"] == pytest.approx(ndcg, abs=1e-4), mode
        assert m["recall@100"] == pytest.approx(recall, abs=1e-4), mode


def test_eval_usage_errors(tmp_path):
    assert run_cli("eval", expect_ok=False).returncode == 2
    bad = run_cli("eval", "--dataset", str(tmp_path), expect_ok=False)
    assert bad.returncode == 1 and "corpus" in bad.stderr or "cannot read" in bad.stderr
    bad = run_cli("eval", "--dataset", str(ADI), "--modes", "fuzzy", expect_ok=False)
    assert bad.returncode == 2 and "mode" in bad.stderr


@pytest.mark.skipif(not ADI.is_dir(), reason=f"BEIR dataset not found at {ADI}")
def test_eval_on_the_chroma_backend(tmp_path, chroma):
    """--index chroma evaluates a collection whose vectors live in Chroma:
    on ADI it ranks as the exact flat index does."""
    reports = {}
    for index in ("flat", "chroma"):
        out = tmp_path / f"{index}.json"
        run_cli("eval", "--dataset", str(ADI), "--modes", "dense", "--index", index,
                "--json", str(out), *chroma.ragd_args())
        reports[index] = json.loads(out.read_text())
    assert reports["chroma"]["index"]["type"] == "chroma"
    assert reports["flat"]["index"] == {"type": "flat"}
    for metric in ("ndcg@10", "recall@100", "mrr@10"):
        assert reports["chroma"]["modes"]["dense"][metric] == pytest.approx(
            reports["flat"]["modes"]["dense"][metric], abs=0.005), metric
    bad = run_cli("eval", "--dataset", str(ADI), "--index", "nosuch", expect_ok=False)
    assert bad.returncode == 1 and "index.type" in bad.stderr, bad


def tiny_beir(root):
    """Two documents: 'far' names its topic only past its first chunk."""
    root.mkdir()
    filler = " ".join(f"word{i}" for i in range(120))
    docs = [{"_id": "near", "title": "", "text": "Zebrafish regrow heart tissue. " + filler},
            {"_id": "far", "title": "", "text": filler + " Axolotls regrow whole limbs."}]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "axolotl limb regrowth"}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tfar\t1\n")


def test_eval_first_chunk_counts_only_each_documents_first_chunk(tmp_path):
    """--first-chunk scores a document by its first chunk only (BEIR and MTEB
    cut documents at the model's limit): the document whose answer lies past
    its first chunk is found without it and not with it."""
    data = tmp_path / "tiny"
    tiny_beir(data)
    reports = {}
    for flag in ([], ["--first-chunk"]):
        out = tmp_path / f"r{len(flag)}.json"
        run_cli("eval", "--dataset", str(data), "--modes", "lexical", "--chunker", "fixed",
                "--set", "chunking.size=32", "--set", "chunking.overlap=0",
                "--json", str(out), *flag)
        reports[bool(flag)] = json.loads(out.read_text())["modes"]["lexical"]
    assert reports[False]["ndcg@10"] == pytest.approx(1.0)
    assert reports[True]["ndcg@10"] == 0.0
    bad = run_cli("eval", "--dataset", str(data), "--chunker", "zigzag", expect_ok=False)
    assert bad.returncode != 0 and "chunker" in bad.stderr
