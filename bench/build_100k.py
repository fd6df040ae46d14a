#!/usr/bin/env python3
"""Builds a ~100k-chunk collection from every corpus in ../shared/datasets.

The data directory is a cache outside the clone (default
~/.cache/ragd/bench/big100k): embedding ~100k chunks takes tens of minutes
on two shared cores, so it is built once and reused by bench_latency.py.
All corpora go into one collection "big" with small chunks (28 tokens, no
overlap) so that ~13k documents make ~100k chunks.

  nice -n 10 python3 bench/build_100k.py --ragd build/ragd

Resumable: documents already stored (same id) are skipped.
"""
import argparse
import concurrent.futures as cf
import glob
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request


def req(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(base + path, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=600) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_ready(base, proc):
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit("ragd exited early")
        try:
            if req(base, "GET", "/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("ragd not ready")


def docs(datasets):
    for f in sorted(glob.glob(os.path.join(datasets, "*", "corpus.jsonl"))):
        name = os.path.basename(os.path.dirname(f))
        with open(f) as fh:
            for i, line in enumerate(fh):
                d = json.loads(line)
                text = ((d.get("title") or "") + "\n" + (d.get("text") or "")).strip()
                if text:
                    yield f"{name}-{i}", text, name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ragd", default="build/ragd")
    ap.add_argument("--data-dir", default=os.path.expanduser("~/.cache/ragd/bench/big100k"))
    ap.add_argument("--datasets", default="/work/shared/datasets")
    ap.add_argument("--port", type=int, default=18931)
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2.gguf")
    ap.add_argument("--chunk-size", type=int, default=28)
    args = ap.parse_args()
    os.makedirs(args.data_dir, exist_ok=True)
    base = f"http://127.0.0.1:{args.port}"
    proc = subprocess.Popen([args.ragd, "serve", "--data-dir", args.data_dir, "--port",
                             str(args.port), "--model", args.model, "--log-level", "warn"])
    try:
        wait_ready(base, proc)
        st, body = req(base, "POST", "/v1/collections",
                       {"name": "big", "chunk_size": args.chunk_size, "chunk_overlap": 0})
        if st not in (200, 201, 409):
            sys.exit(f"create: {st} {body}")
        t0 = time.time()
        n = 0

        def put(item):
            doc_id, text, corpus = item
            st, _ = req(base, "GET", f"/v1/collections/big/documents/{doc_id}")
            if st == 200:
                return 0
            st, body = req(base, "POST", "/v1/collections/big/documents",
                           {"id": doc_id, "text": text, "metadata": {"corpus": corpus}})
            if st not in (200, 201):
                print(f"{doc_id}: {st} {body}", file=sys.stderr)
            return 1

        with cf.ThreadPoolExecutor(4) as ex:
            for _ in ex.map(put, docs(args.datasets)):
                n += 1
                if n % 500 == 0:
                    st, info = req(base, "GET", "/v1/collections/big")
                    print(f"{n} docs, {time.time() - t0:.0f} s: {info}", flush=True)
        st, info = req(base, "GET", "/v1/collections/big")
        print(f"done: {n} docs in {time.time() - t0:.0f} s: {info}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


if __name__ == "__main__":
    main()
