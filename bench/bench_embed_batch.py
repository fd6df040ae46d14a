#!/usr/bin/env python3
"""
Micro-batching of embedding requests across concurrent callers: throughput
and latency of POST /v1/embeddings with one short text per request, from
C concurrent clients, with models.micro_batch on and off (side by side, one
server each, same machine).

  python3 bench/bench_embed_batch.py --clients 16 --requests 2000

Prints a Markdown table for bench/RESULTS.md.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = os.environ.get("RAGD_BIN", str(REPO / "build" / "ragd"))
MODEL = os.environ.get("RAGD_MODEL", str(REPO / "models" / "all-MiniLM-L6-v2.gguf"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(extra):
    port = free_port()
    d = tempfile.mkdtemp(prefix="ragd-bench-")
    p = subprocess.Popen([BIN, "serve", "--data-dir", d, "--port", str(port), "--model", MODEL,
                          "--log-level", "warn", "--set", "log.access=false", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/ready")
            if c.getresponse().status == 200:
                return p, port
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    sys.exit("ragd did not start")


def run(port, clients, requests):
    lat = []
    lock = threading.Lock()
    per = requests // clients

    def worker(w):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for k in range(per):
            body = json.dumps({"model": "all-MiniLM-L6-v2", "encoding_format": "base64",
                               "input": f"what is the capital of country number {w}-{k}?"})
            t = time.perf_counter()
            c.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            assert r.status == 200
            mine.append((time.perf_counter() - t) * 1e3)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return len(lat) / wall, statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    configs = (("off", ["--set", "models.micro_batch=false"]),
               ("on, window 0", ["--set", "models.micro_batch=true",
                                 "--set", "models.micro_batch_window_us=0"]),
               ("on, window 2 ms", ["--set", "models.micro_batch=true",
                                    "--set", "models.micro_batch_window_us=2000"]))
    a = ap.parse_args()
    servers = [start(extra) for _, extra in configs]
    results = {label: [] for label, _ in configs}
    try:
        for (label, _), (_, port) in zip(configs, servers):
            run(port, a.clients, a.clients * 4)  # warm up
        # Interleaved rounds, so that load from elsewhere hits every config alike.
        for _ in range(a.rounds):
            for (label, _), (_, port) in zip(configs, servers):
                results[label].append(run(port, a.clients, a.requests))
    finally:
        for p, _ in servers:
            p.terminate()
            p.wait()
    print(f"| micro_batch | requests/s (median of {a.rounds}) | p50 ms | p99 ms |  "
          f"({a.clients} clients, {a.requests} requests of one text per round)")
    print("| --- | --- | --- | --- |")
    base = None
    for label, rs in results.items():
        rs.sort()
        rps, p50, p99 = rs[len(rs) // 2]
        base = base or rps
        print(f"| {label} | {rps:.0f} ({rps / base:.2f}x) | {p50:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
