#!/usr/bin/env python3
"""Search throughput with 1 and 2 worker processes (server.workers) on one
machine.

A collection of SciFact documents is ingested once into a data dir (kept in
~/.cache/ragd/bench/workers and reused), then for each configuration ragd
is started on it, warmed up, and a closed-loop client sends searches
("cache": false, so every one embeds its query and scans both indexes)
over many keep-alive connections for a fixed time. Queries are SciFact's.
Connections spread over the workers by the kernel's SO_REUSEPORT hash, so
there are several per worker.

Configurations (the 2-core machine's cores shared differently):
  w1        1 worker,  server.threads 2, models.embed_contexts 2 (the default)
  w2        2 workers, each server.threads 1, one embedding context of one
            thread (two ggml threads per context would spin-wait on each
            other across the workers)
  w2-over   2 workers, each with the defaults (2 + 2: oversubscribed)

  nice -n 10 python3 bench/bench_workers.py --ragd build/ragd
  python3 bench/bench_workers.py --ragd build/ragd --seconds 30 --conns 16
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

CONFIGS = {
    "w1": ["--set", "server.workers=1"],
    "w2": ["--set", "server.workers=2", "--set", "server.threads=1",
           "--set", "models.embed_contexts=1", "--set", "models.embed_threads=1"],
    "w2-over": ["--set", "server.workers=2"],
}


def request(conn, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    raw = r.read()
    return r.status, raw


def start(ragd, data_dir, port, model, extra, log):
    cmd = [ragd, "serve", "--data-dir", data_dir, "--port", str(port), "--model", model,
           "--set", "models.generator=", "--set", "log.access=false", *extra]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if p.poll() is not None:
            sys.exit(f"ragd exited: {cmd}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            st, _ = request(c, "GET", "/ready")
            c.close()
            if st == 200:
                return p
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    sys.exit("ragd not ready")


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)


def ingest(args, port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    st, raw = request(conn, "POST", "/v1/collections", {"name": "bw"})
    if st not in (201, 409):
        sys.exit(f"create: {st} {raw[:200]}")
    n = 0
    with open(os.path.join(args.dataset, "corpus.jsonl")) as f:
        for line in f:
            if n >= args.docs:
                break
            d = json.loads(line)
            st, raw = request(conn, "POST", "/v1/collections/bw/documents",
                              {"id": d["_id"], "text": (d.get("title", "") + "\n\n" + d["text"])})
            if st not in (200, 201):
                sys.exit(f"ingest: {st} {raw[:200]}")
            n += 1
    conn.close()
    return n


def load(port, queries, seconds, n_conns):
    stop_at = time.monotonic() + seconds
    counts, lat, errors = [0] * n_conns, [[] for _ in range(n_conns)], [0] * n_conns

    def run(i):
        rnd = random.Random(i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < stop_at:
            q = rnd.choice(queries)
            t0 = time.monotonic()
            try:
                st, _ = request(conn, "POST", "/v1/collections/bw/search",
                                {"query": q, "top_k": 10, "cache": False})
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                st = None
            if st == 200:
                counts[i] += 1
                lat[i].append(time.monotonic() - t0)
            else:
                errors[i] += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    all_lat = sorted(x for xs in lat for x in xs)
    pct = lambda p: all_lat[min(len(all_lat) - 1, int(len(all_lat) * p))] * 1000 if all_lat else 0
    return sum(counts) / wall, pct(0.5), pct(0.99), sum(errors)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ragd", default="build/ragd")
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2.gguf")
    ap.add_argument("--dataset", default="/work/shared/datasets/scifact")
    ap.add_argument("--data-dir", default=os.path.expanduser("~/.cache/ragd/bench/workers"))
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--port", type=int, default=47641)
    ap.add_argument("--configs", default="w1,w2,w2-over")
    args = ap.parse_args()

    with open(os.path.join(args.dataset, "queries.jsonl")) as f:
        queries = [json.loads(line)["text"] for line in f]
    log = open("/tmp/bench_workers.log", "ab")
    marker = os.path.join(args.data_dir, f".ingested-{args.docs}")
    if not os.path.exists(marker):
        shutil.rmtree(args.data_dir, ignore_errors=True)
        os.makedirs(args.data_dir)
        p = start(args.ragd, args.data_dir, args.port, args.model, [], log)
        t0 = time.monotonic()
        n = ingest(args, args.port)
        stop(p)
        print(f"ingested {n} documents in {time.monotonic() - t0:.0f} s", flush=True)
        open(marker, "w").close()

    print(f"| config | searches/s | p50 ms | p99 ms | errors |  ({args.conns} connections, "
          f"{args.seconds:.0f} s, {os.cpu_count()} CPUs)")
    print("| --- | --- | --- | --- | --- |")
    for name in args.configs.split(","):
        p = start(args.ragd, args.data_dir, args.port, args.model, CONFIGS[name], log)
        try:
            time.sleep(2)  # every worker listening
            load(args.port, queries, args.warmup, args.conns)
            qps, p50, p99, errors = load(args.port, queries, args.seconds, args.conns)
        finally:
            stop(p)
        print(f"| {name} | {qps:.1f} | {p50:.1f} | {p99:.1f} | {errors} |", flush=True)


if __name__ == "__main__":
    main()
