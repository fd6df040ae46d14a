"""
ragd's embeddings against reference vectors computed with
sentence-transformers (tests/fixtures/embed_reference.json, written by
tools/make_embed_reference.py): cosine similarity >= 0.99 for every sentence.
"""
import json
import math

import pytest

from conftest import REPO, run_cli

REFERENCE = REPO / "tests" / "fixtures" / "embed_reference.json"
MIN_COSINE = 0.99


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb)


def load_reference():
    if not REFERENCE.is_file():
        pytest.skip(f"reference embeddings not there yet: {REFERENCE} "
                    "(generate with tools/make_embed_reference.py)")
    with open(REFERENCE, encoding="utf-8") as f:
        ref = json.load(f)
    sentences = ref.get("sentences") or []
    if not sentences:
        pytest.skip(f"{REFERENCE} holds no sentences")
    return ref, sentences


def test_embeddings_match_reference(tmp_path):
    ref, sentences = load_reference()
    texts = [s["text"] for s in sentences]
    # "--" so that texts starting with '-' are not taken for flags
    res = run_cli("embed", "--", *texts, data_dir=tmp_path / "data")
    lines = [l for l in res.stdout.split("\n") if l.strip()]
    assert len(lines) == len(texts), f"{len(lines)} vectors for {len(texts)} texts: {res}"
    worst = []
    for s, line in zip(sentences, lines):
        got = json.loads(line)
        want = s["embedding"]
        assert len(got) == len(want) == 384, (s["text"][:60], len(got), len(want))
        worst.append((cosine(got, want), s["text"]))
    worst.sort()
    print(f"\nmodel {ref.get('model')}: {len(worst)} sentences, "
          f"min cosine {worst[0][0]:.6f} ({worst[0][1][:60]!r}), "
          f"mean {sum(c for c, _ in worst) / len(worst):.6f}")
    bad = [(round(c, 6), t[:80]) for c, t in worst if c < MIN_COSINE]
    assert not bad, f"cosine < {MIN_COSINE} for: {bad}"
