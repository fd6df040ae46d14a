#!/usr/bin/env python3
"""Foundation benchmark: ingest embedding throughput against llama.cpp's own
embedding tool on the same chunks, and search latency over ~10k chunks.

    python3 bench/bench_foundation.py [--docs N] [--queries N]

Needs build/ragd, models/ (make build models), the llama.cpp cache
(make deps) and ../shared/datasets/scifact. Prints a Markdown section for
bench/RESULTS.md. Everything runs here, side by side, in one run.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("RAGD_CACHE", os.path.expanduser("~/.cache/ragd"))
LLAMA_EMBED = os.path.join(CACHE, "llama.cpp-0.3.36-%s" % os.environ.get("RAGD_CPU", "native"),
                           "bin", "llama-embedding")
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2.gguf")
DATASET = os.path.join(ROOT, "..", "shared", "datasets", "scifact")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=json.dumps(body) if body is not None else None)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def pct(values, p):
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def start_server(data_dir, port):
    proc = subprocess.Popen([os.path.join(ROOT, "build", "ragd"), "serve", "--data-dir", data_dir,
                             "--port", str(port), "--model", MODEL, "--log-level", "warn"])
    for _ in range(600):
        try:
            if call(port, "GET", "/ready")[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("ragd did not become ready")


def ingest(port, docs, clients):
    """POSTs the documents from `clients` threads; returns (seconds, chunks)."""
    chunks = [0] * clients
    errors = []

    def worker(i):
        for d in docs[i::clients]:
            status, body = call(port, "POST", "/v1/collections/bench/documents", d)
            if status not in (200, 201):
                errors.append(body)
                return
            chunks[i] += body["chunks"]

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("ingest failed: %s" % errors[0])
    return time.perf_counter() - t0, sum(chunks)


def llama_embedding_rate(texts, threads):
    """Wall time of llama.cpp's llama-embedding over the texts, minus its load time."""
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "chunks.txt")
    with open(path, "w") as f:
        f.write("\n".join(t.replace("\n", " ") for t in texts))
    one = os.path.join(tmp, "one.txt")
    with open(one, "w") as f:
        f.write("warm up")
    # Its fastest setting found here: 512-token batches (4096 was 1.8x slower:
    # a batch's attention mask grows with the square of its tokens).
    args = [LLAMA_EMBED, "-m", MODEL, "--pooling", "mean", "--embd-normalize", "2",
            "-c", "512", "-b", "512", "-ub", "512", "-np", "64", "-t", str(threads),
            "-tb", str(threads), "--log-disable", "--embd-output-format", "array"]

    def timed(f):
        t0 = time.perf_counter()
        subprocess.run(args + ["-f", f], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        return time.perf_counter() - t0

    load = min(timed(one) for _ in range(2))
    total = timed(path)
    shutil.rmtree(tmp)
    return total - load, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=5183)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--llama-chunks", type=int, default=2000,
                    help="chunks given to llama-embedding for its rate")
    args = ap.parse_args()

    docs = []
    with open(os.path.join(DATASET, "corpus.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            text = (d["title"] + "\n\n" + d["text"]).strip()
            docs.append({"id": "d" + d["_id"], "text": text})
    docs = docs[:args.docs]
    queries = []
    with open(os.path.join(DATASET, "queries.jsonl")) as f:
        for line in f:
            queries.append(json.loads(line)["text"])
    queries = (queries * (args.queries // len(queries) + 1))[:args.queries]

    data_dir = tempfile.mkdtemp(prefix="ragd-bench-")
    port = free_port()
    proc = start_server(data_dir, port)
    try:
        call(port, "POST", "/v1/collections", {"name": "bench", "chunk_size": 128,
                                                "chunk_overlap": 16})
        secs, n_chunks = ingest(port, docs, args.clients)
        ragd_rate = n_chunks / secs
        db = sqlite3.connect(os.path.join(data_dir, "ragd.db"))
        texts = [r[0] for r in db.execute("SELECT text FROM chunks ORDER BY id")]
        db.close()
        tokens = None
        # Search latency: client-side round trip and the server's own timings.
        call(port, "POST", "/v1/collections/bench/search", {"query": "warm up", "top_k": 10})
        client_ms, server_ms, scan_ms = [], [], []
        for q in queries:
            t0 = time.perf_counter()
            status, body = call(port, "POST", "/v1/collections/bench/search",
                                {"query": q, "top_k": 10})
            client_ms.append((time.perf_counter() - t0) * 1e3)
            assert status == 200, body
            server_ms.append(body["timings"]["total_ms"])
            scan_ms.append(body["timings"]["search_ms"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)

    sample = texts[:args.llama_chunks]
    llama_secs, llama_load = llama_embedding_rate(sample, os.cpu_count())
    llama_rate = len(sample) / llama_secs
    lines = [
        "## Foundation: ingest throughput and search latency",
        "",
        "Run: `python3 bench/bench_foundation.py --docs %d --queries %d --clients %d "
        "--llama-chunks %d` on %s, %d cores, %s." % (args.docs, args.queries, args.clients,
                                                   args.llama_chunks, socket.gethostname(),
                                                   os.cpu_count(), time.strftime("%Y-%m-%d")),
        "Corpus: SciFact (title + abstract), chunk_size 128 tokens, overlap 16, "
        "all-MiniLM-L6-v2 F32 GGUF.",
        "",
        "| measure | value |",
        "| --- | --- |",
        "| documents ingested over HTTP (%d clients) | %d in %.1f s |" % (args.clients, len(docs),
                                                                     secs),
        "| chunks | %d |" % n_chunks,
        "| ragd ingest (chunk + embed + store + index) | **%.0f chunks/s** |" % ragd_rate,
        "| llama.cpp `llama-embedding -b 512 -ub 512 -np 64`, first %d of the same chunks, "
        "%d threads, load time (%.1f s) excluded | **%.0f chunks/s** |" % (len(sample), os.cpu_count(), llama_load,
                                                    llama_rate),
        "| ragd / llama.cpp | %.2f |" % (ragd_rate / llama_rate),
        "| search over %d chunks, top_k 10, %d queries: client round trip p50 / p99 | %.2f / %.2f ms |"
        % (n_chunks, len(queries), pct(client_ms, 50), pct(client_ms, 99)),
        "| server total (embed query + scan + hydrate) p50 / p99 | %.2f / %.2f ms |"
        % (pct(server_ms, 50), pct(server_ms, 99)),
        "| index scan + hydrate only p50 / p99 | %.3f / %.3f ms |"
        % (pct(scan_ms, 50), pct(scan_ms, 99)),
        "",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
