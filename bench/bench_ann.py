#!/usr/bin/env python3
"""Recall/QPS curves of the vector index types on real embeddings.

Reads the chunk vectors of one collection out of a ragd SQLite store (what
ragd itself embedded), embeds the dataset's queries with `ragd embed` (the
same model), caches both under ~/.cache/ragd/bench/, and runs
build/bench_ann on them (recall@10 against the exact flat scan, QPS,
latency, memory).

  # scifact as `ragd eval` leaves it (5,183 docs, 128-token chunks):
  nice -n 10 python3 bench/bench_ann.py --db ~/.cache/ragd/eval/scifact/ragd.db \\
      --collection eval --queries ../shared/datasets/scifact/queries.jsonl \\
      --name scifact IVF64,Flat HNSW32
  # every corpus in 28-token chunks (bench/build_100k.py), queries of all sets:
  nice -n 10 python3 bench/bench_ann.py --db ~/.cache/ragd/bench/big100k/ragd.db \\
      --collection big --queries '../shared/datasets/*/queries.jsonl' \\
      --name big100k IVF1024,PQ48 IVF1024,Flat HNSW32

Uniform random vectors are not used on purpose: they have no neighbourhood
structure and make every ANN index look broken.
"""
import argparse
import glob
import json
import os
import random
import sqlite3
import subprocess
import sys

CACHE = os.path.expanduser("~/.cache/ragd/bench")


def base_vectors(dbs, collections, out):
    if os.path.exists(out):
        return
    with open(out + ".tmp", "wb") as f:
        for db, collection in zip(dbs, collections):
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            (cid,) = con.execute("SELECT id FROM collections WHERE name = ?",
                                 (collection,)).fetchone()
            for (blob,) in con.execute("SELECT embedding FROM chunks WHERE collection_id = ? "
                                       "ORDER BY id", (cid,)):
                f.write(blob)
    os.rename(out + ".tmp", out)


def query_vectors(ragd, model, pattern, limit, out):
    if os.path.exists(out):
        return
    texts = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    random.Random(1).shuffle(texts)
    texts = texts[:limit]
    import struct
    with open(out + ".tmp", "wb") as f:
        for at in range(0, len(texts), 200):
            p = subprocess.run([ragd, "embed", "--model", model, *texts[at:at + 200]],
                               capture_output=True, text=True, check=True)
            for line in p.stdout.splitlines():
                v = json.loads(line)
                f.write(struct.pack(f"<{len(v)}f", *v))
    os.rename(out + ".tmp", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, action="append", help="a ragd.db (repeatable)")
    ap.add_argument("--collection", required=True, action="append",
                    help="the collection in the --db of the same position")
    ap.add_argument("--queries", required=True, help="queries.jsonl (a glob)")
    ap.add_argument("--name", required=True, help="cache file prefix")
    ap.add_argument("--max-queries", type=int, default=1000)
    ap.add_argument("--ragd", default="build/ragd")
    ap.add_argument("--bench", default="build/bench_ann")
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2.gguf")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("factories", nargs="*", help="FAISS factory strings to try")
    args = ap.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    base = os.path.join(CACHE, f"{args.name}.base.f32")
    queries = os.path.join(CACHE, f"{args.name}.queries.f32")
    base_vectors(args.db, args.collection, base)
    query_vectors(args.ragd, args.model, args.queries, args.max_queries, queries)
    sys.stdout.flush()
    subprocess.run([args.bench, base, queries, str(args.dim), *args.factories], check=True)


if __name__ == "__main__":
    main()
