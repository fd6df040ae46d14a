#!/usr/bin/env python3
"""Cache benchmark: QPS and latency of a repeated-query workload (Zipf over
1,000 distinct SciFact queries) with no cache, the in-process LRU, a local
Redis, and both (two-level), through the HTTP API.

    nice -n 10 python3 bench/bench_cache.py [--docs 500] [--requests 3000]
        [--clients 4] [--zipf 1.1] [--mode dense]

Ingests --docs SciFact documents once into a temporary data dir, then for
each backend starts ragd on it (a fresh, empty cache every time; Redis is
flushed), sends the same seeded request sequence from --clients threads with
keep-alive connections (cold), then once more on the now warm cache, and
reads X-Cache to count hits. Needs build/ragd,
models/ (make build models), redis-server and ../shared/datasets/scifact.
Prints a Markdown section for bench/RESULTS.md.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def start_server(data_dir, port, args):
    proc = subprocess.Popen([os.path.join(ROOT, "build", "ragd"), "serve", "--data-dir", data_dir,
                             "--port", str(port), "--model", MODEL, "--log-level", "warn",
                             "--set", "log.access=false", *args])
    for _ in range(600):
        try:
            if call(port, "GET", "/ready")[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("ragd did not become ready")


def stop(proc):
    proc.terminate()
    proc.wait(timeout=60)


def load_jsonl(path, n):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def zipf_sequence(n_queries, n_requests, s, seed):
    weights = [1.0 / (rank ** s) for rank in range(1, n_queries + 1)]
    rng = random.Random(seed)
    return rng.choices(range(n_queries), weights=weights, k=n_requests)


def run_load(port, queries, seq, clients, mode):
    """Sends seq (indexes into queries) from `clients` threads; returns stats."""
    lat = [[] for _ in range(clients)]
    hits = [0] * clients
    errors = []

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for j in seq[i::clients]:
            body = json.dumps({"query": queries[j], "top_k": 10, "mode": mode})
            t0 = time.perf_counter()
            conn.request("POST", "/v1/collections/bench/search", body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            lat[i].append((time.perf_counter() - t0) * 1000.0)
            if r.status != 200:
                errors.append(r.status)
            if r.getheader("X-Cache") == "HIT":
                hits[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    all_lat = [x for part in lat for x in part]
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[:5]}")
    return {"qps": len(all_lat) / wall, "p50": pct(all_lat, 50), "p95": pct(all_lat, 95),
            "p99": pct(all_lat, 99), "mean": sum(all_lat) / len(all_lat),
            "hit": sum(hits) / len(all_lat), "wall": wall}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--mode", default="dense")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()

    queries = [q["text"] for q in load_jsonl(os.path.join(DATASET, "queries.jsonl"), a.queries)]
    if len(queries) < a.queries:
        queries += [q["text"] for q in load_jsonl(os.path.join(DATASET, "queries_train.jsonl"),
                                                  a.queries - len(queries))]
    docs = load_jsonl(os.path.join(DATASET, "corpus.jsonl"), a.docs)
    seq = zipf_sequence(len(queries), a.requests, a.zipf, a.seed)
    distinct = len(set(seq))

    tmp = tempfile.mkdtemp(prefix="ragd-bench-cache-")
    data = os.path.join(tmp, "data")
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = free_port()
        srv = start_server(data, port, ["--set", "cache.backend=none"])
        call(port, "POST", "/v1/collections", {"name": "bench"})
        for d in docs:
            st, body = call(port, "POST", "/v1/collections/bench/documents",
                            {"id": d["_id"], "text": (d.get("title", "") + "\n" + d["text"]).strip()})
            assert st in (200, 201), body
        stop(srv)

        url = f"redis://127.0.0.1:{redis_port}"
        configs = [
            ("none", ["--set", "cache.backend=none"]),
            ("lru", ["--set", "cache.backend=lru"]),
            ("redis", ["--set", "cache.backend=redis", "--set", f"cache.redis.url={url}"]),
            ("two-level", ["--set", "cache.backend=two-level", "--set", f"cache.redis.url={url}"]),
        ]
        rows = []
        for name, args in configs:
            subprocess.run(["redis-cli", "-p", str(redis_port), "FLUSHALL"], check=True,
                           capture_output=True)
            port = free_port()
            srv = start_server(data, port, args)
            try:
                rows.append((name, "cold", run_load(port, queries, seq, a.clients, a.mode)))
                if name != "none":  # the same sequence again, every query now cached
                    rows.append((name, "warm", run_load(port, queries, seq, a.clients, a.mode)))
            finally:
                stop(srv)
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    cpus = os.cpu_count()
    print("### Cache: repeated queries, Zipf over %d queries\n" % len(queries))
    print("Run: `nice -n 10 python3 bench/bench_cache.py --docs %d --requests %d --clients %d "
          "--zipf %s --mode %s`\n" % (a.docs, a.requests, a.clients, a.zipf, a.mode))
    print("%d SciFact documents; %d requests (%d distinct queries, Zipf s=%s, seed %d), "
          "top_k 10, mode %s, %d client threads with keep-alive, %d CPUs shared with other "
          "work; each backend starts empty.\n"
          % (len(docs), a.requests, distinct, a.zipf, a.seed, a.mode, a.clients, cpus))
    print("| cache | pass | QPS | mean ms | p50 ms | p95 ms | p99 ms | hit ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, phase, r in rows:
        print("| %s | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.3f |"
              % (name, phase, r["qps"], r["mean"], r["p50"], r["p95"], r["p99"], r["hit"]))
    print("\ncold: the cache starts empty, so each distinct query misses once; warm: the "
          "same sequence again on the same server. Load average during the run: %.1f."
          % os.getloadavg()[0])


if __name__ == "__main__":
    main()
