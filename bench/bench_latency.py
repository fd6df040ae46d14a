#!/usr/bin/env python3
"""Search latency per mode (dense, lexical, hybrid) over HTTP on a large
collection, for a given vector index type.

Uses the data directory bench/build_100k.py made (~100k chunks). With
--index, the store is copied first (a SQLite backup, so the cache is left
as it is) and the collection's config_json rewritten to that index spec:
the server then builds that index from the stored vectors at start, as it
would for a collection created with it. Queries are the datasets' own,
sent one at a time (top_k 10, past the cache: "cache": false), after a warm-up; latency is measured by the
client (embedding the query included, as a user sees it).

  nice -n 10 python3 bench/bench_latency.py --ragd build/ragd
  nice -n 10 python3 bench/bench_latency.py --ragd build/ragd \\
      --index '{"type":"hnsw","m":16,"ef_construction":200,"ef_search":64}'
"""
import argparse
import glob
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request


def req(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(base + path, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(r, timeout=600) as resp:
        return json.loads(resp.read())


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ragd", default="build/ragd")
    ap.add_argument("--data-dir", default=os.path.expanduser("~/.cache/ragd/bench/big100k"))
    ap.add_argument("--index", help="index spec JSON; default: the collection's own")
    ap.add_argument("--queries", default="/work/shared/datasets/*/queries.jsonl")
    ap.add_argument("--n", type=int, default=200, help="queries per mode")
    ap.add_argument("--port", type=int, default=47631)
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2.gguf")
    args = ap.parse_args()

    data_dir = args.data_dir
    if args.index:
        spec = json.loads(args.index)
        data_dir = args.data_dir.rstrip("/") + "-" + spec["type"]
        os.makedirs(data_dir, exist_ok=True)
        dst_path = os.path.join(data_dir, "ragd.db")
        if not os.path.exists(dst_path):
            src = sqlite3.connect(f"file:{args.data_dir}/ragd.db?mode=ro", uri=True)
            dst = sqlite3.connect(dst_path + ".tmp")
            src.backup(dst)
            dst.execute("UPDATE collections SET config_json = ? WHERE name = 'big'",
                        (json.dumps({"index": spec}, separators=(",", ":")),))
            dst.commit()
            dst.close()
            os.rename(dst_path + ".tmp", dst_path)

    texts = []
    for path in sorted(glob.glob(args.queries)):
        with open(path) as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    random.Random(2).shuffle(texts)

    base = f"http://127.0.0.1:{args.port}"
    t0 = time.time()
    proc = subprocess.Popen([args.ragd, "serve", "--data-dir", data_dir, "--port",
                             str(args.port), "--model", args.model, "--log-level", "warn"])
    try:
        while True:
            if proc.poll() is not None:
                sys.exit("ragd exited")
            try:
                urllib.request.urlopen(base + "/ready", timeout=5)
                break
            except Exception:
                time.sleep(1)
        info = req(base, "GET", "/v1/collections/big")
        print(f"collection big: {info['vectors']} vectors, index {json.dumps(info['index'])}, "
              f"{info['index_bytes'] / 2**20:.0f} MiB; ready in {time.time() - t0:.0f} s")
        print()
        print("| mode | p50 ms | p99 ms | mean ms | server search_ms p50 |")
        print("| --- | --- | --- | --- | --- |")
        for mode in ("dense", "lexical", "hybrid"):
            qs = texts[:args.n + 20]
            lat, srv = [], []
            for i, q in enumerate(qs):
                t = time.perf_counter()
                body = req(base, "POST", "/v1/collections/big/search",
                           {"query": q, "top_k": 10, "mode": mode, "cache": False})
                if i >= 20:  # warm-up
                    lat.append((time.perf_counter() - t) * 1e3)
                    srv.append(body.get("timings", {}).get("search_ms", float("nan")))
            print(f"| {mode} | {pct(lat, 0.5):.1f} | {pct(lat, 0.99):.1f} | "
                  f"{statistics.mean(lat):.1f} | {pct(srv, 0.5):.1f} |", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)


if __name__ == "__main__":
    main()
