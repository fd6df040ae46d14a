#!/usr/bin/env python3
"""Sustained mixed load: 90 % search (dense, lexical, hybrid), 10 % ingest
(upserts), at the highest rate the machine holds with p99 under 1 s, for
10 minutes; samples the server's RSS and open file descriptors.

Steps:
1. start `ragd serve` on a fresh data dir (no generator: searches and
   ingest only) and seed a collection with --seed-docs documents of the
   corpus (SciFact abstracts by default);
2. ramp: --ramp-step-s seconds at each rate, from --start-rate up by x1.4,
   until p99 >= --p99-s or any error; the highest rate that passed is kept
   (or --rate skips the ramp);
3. the run: --duration-s at that rate. Every --sample-s seconds a CSV row:
   elapsed, requests, 5xx, other errors, p50/p99 of that window, VmRSS,
   RssAnon (heap: the leak signal), open fds, threads;
4. writes the CSV, an ASCII curve of RSS and fds, and a summary (the
   RSS slope after --warmup-s by least squares, fd range, 5xx count, pass
   or fail) under --out. ragd's own log goes to --out/ragd.log: run with
   --ragd build-asan/ragd and LeakSanitizer's report at exit lands there.

The load is open-loop: requests are scheduled at the rate whatever the
answers do, and latency is measured from the scheduled time, so a server
falling behind shows as latency (no coordinated omission). Ingests upsert
documents of the seeded set with texts of the corpus not yet used, so the
collection keeps its size (RSS can stay flat) while every ingest embeds all
its chunks. Searches bypass the result cache ("cache": false): the run
measures the work, not the cache.

  nice -n 10 python3 bench/bench_load.py                     # ramp + 10 min
  nice -n 10 python3 bench/bench_load.py --rate 8 --duration-s 60
"""
import argparse
import http.client
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

MODES = ("dense", "lexical", "hybrid")
COLL = "load"


class Client:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body=data,
                                  headers={"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                raw = resp.read()
                return resp.status, raw
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def load_corpus(path, n_min):
    texts = []
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                t = (d.get("title", "") + "\n\n" + d.get("text", "")).strip()
                if len(t) > 200:
                    texts.append(t)
    if len(texts) < n_min:  # no corpus: synthetic paragraphs
        rng = random.Random(1)
        words = ["".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou")
                         for _ in range(rng.randint(2, 4))) for _ in range(5000)]
        while len(texts) < n_min:
            texts.append(". ".join(" ".join(rng.sample(words, 12)) for _ in range(12)) + ".")
    return texts


def load_queries(path):
    out = []
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            out = [json.loads(line)["text"] for line in f]
    return out or ["cell biology", "protein expression in mice", "risk of cancer"]


def proc_sample(pid):
    """VmRSS and RssAnon (kB), open fds, threads. RssAnon is the heap and
    stacks: VmRSS also counts the model file's mapped pages, which the
    kernel drops and reads back under memory pressure."""
    rss = anon = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, anon, fds, threads


def pct(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


class Load:
    """Open-loop traffic at a given rate from a pool of worker threads."""

    def __init__(self, port, texts, queries, seeded, next_text, workers, rng):
        self.port, self.texts, self.queries = port, texts, queries
        self.seeded, self.next_text = seeded, next_text
        self.rng = rng
        self.lock = threading.Lock()
        self.q = queue.Queue()
        self.results = []  # (kind, status or None, latency_s)
        self.stop = False
        self.threads = [threading.Thread(target=self.worker, daemon=True)
                        for _ in range(workers)]
        for t in self.threads:
            t.start()

    def op(self):
        with self.lock:
            if self.rng.random() < 0.10:
                doc_id = self.rng.choice(self.seeded)
                text = self.texts[self.next_text % len(self.texts)]
                self.next_text += 1
                return ("ingest", "POST", f"/v1/collections/{COLL}/documents",
                        {"id": doc_id, "text": text})
            mode = self.rng.choice(MODES)
            return (mode, "POST", f"/v1/collections/{COLL}/search",
                    {"query": self.rng.choice(self.queries), "mode": mode, "top_k": 10,
                     "cache": False})

    def worker(self):
        client = Client(self.port)
        client.request("GET", "/health")  # connect now: the fd count is steady from the start
        while True:
            item = self.q.get()
            if item is None:
                return
            due, (kind, method, path, body) = item
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                status, _ = client.request(method, path, body)
            except (OSError, http.client.HTTPException):
                status = None
            with self.lock:
                self.results.append((kind, status, time.monotonic() - due))

    def run(self, rate, seconds, on_tick=None, tick_s=5.0):
        """Schedules rate req/s for seconds; calls on_tick(window results)
        every tick_s. Returns all results of the period."""
        start = time.monotonic()
        with self.lock:
            self.results = []
        n = 0
        next_tick = start + tick_s
        taken = 0
        period = []
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            # Keep the queue filled about 0.2 s ahead of time.
            while n / rate < now - start + 0.2 and n / rate < seconds:
                self.q.put((start + n / rate, self.op()))
                n += 1
            if on_tick and now >= next_tick:
                with self.lock:
                    window = self.results[taken:]
                    taken = len(self.results)
                on_tick(now - start, window)
                next_tick += tick_s
            time.sleep(0.02)
        # Let the scheduled requests finish (up to 30 s).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results) >= n:
                    break
            time.sleep(0.05)
        with self.lock:
            period = list(self.results)
            if on_tick:
                on_tick(time.monotonic() - start, self.results[taken:])
        return period, n

    def close(self):
        for _ in self.threads:
            self.q.put(None)


def summarize(results):
    lat = [r[2] for r in results if r[1] is not None and r[1] < 500]
    return {
        "n": len(results),
        "5xx": sum(1 for r in results if r[1] is not None and r[1] >= 500),
        "errors": sum(1 for r in results if r[1] is None or (400 <= r[1] < 500)),
        "p50": pct(lat, 0.50),
        "p99": pct(lat, 0.99),
        "by_kind": {k: round(pct([r[2] for r in results if r[0] == k], 0.99), 3)
                    for k in ("ingest",) + MODES},
    }


def slope(xs, ys):
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def ascii_curve(rows, key, label, width=72, height=12):
    ys = [r[key] for r in rows]
    if not ys:
        return ""
    lo, hi = min(ys), max(ys)
    if hi == lo:
        hi = lo + 1
    cols = min(width, len(ys))
    step = len(ys) / cols
    pts = [ys[int(i * step)] for i in range(cols)]
    grid = [[" "] * cols for _ in range(height)]
    for x, y in enumerate(pts):
        grid[height - 1 - int((y - lo) / (hi - lo) * (height - 1))][x] = "*"
    out = [f"{label}: {lo:g} .. {max(ys):g} over {rows[-1]['t_s']:.0f} s"]
    for i, row in enumerate(grid):
        v = hi - (hi - lo) * i / (height - 1)
        out.append(f"{v:10.1f} |" + "".join(row))
    out.append(" " * 11 + "+" + "-" * cols)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ragd", default="build/ragd")
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2.gguf")
    ap.add_argument("--corpus", default="/work/shared/datasets/scifact/corpus.jsonl")
    ap.add_argument("--queries", default="/work/shared/datasets/scifact/queries.jsonl")
    ap.add_argument("--seed-docs", type=int, default=500)
    ap.add_argument("--rate", type=float, help="requests/s; skips the ramp")
    ap.add_argument("--start-rate", type=float, default=1.0)
    ap.add_argument("--ramp-step-s", type=float, default=20.0)
    ap.add_argument("--p99-s", type=float, default=1.0)
    ap.add_argument("--duration-s", type=float, default=600.0)
    ap.add_argument("--warmup-s", type=float, default=120.0)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=32, help="client threads (connections)")
    ap.add_argument("--port", type=int, default=47701)
    ap.add_argument("--out", default="bench/load")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    texts = load_corpus(args.corpus, args.seed_docs * 3)
    queries = load_queries(args.queries)
    data_dir = tempfile.mkdtemp(prefix="ragd-load-")
    log = open(os.path.join(args.out, "ragd.log"), "wb")
    cmd = [args.ragd, "serve", "--data-dir", data_dir, "--port", str(args.port),
           "--host", "127.0.0.1", "--model", args.model, "--set", "models.generator=",
           "--set", "log.access=false"]
    srv = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    admin = Client(args.port)
    try:
        for _ in range(600):
            try:
                if admin.request("GET", "/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert srv.poll() is None, "ragd exited; see " + log.name
            time.sleep(0.1)
        st, raw = admin.request("POST", "/v1/collections", {"name": COLL})
        assert st == 201, raw
        t0 = time.monotonic()
        seeded = [f"doc-{i}" for i in range(args.seed_docs)]
        for start in range(0, args.seed_docs, 100):
            items = [{"id": seeded[i], "text": texts[i]}
                     for i in range(start, min(start + 100, args.seed_docs))]
            st, raw = admin.request("POST", f"/v1/collections/{COLL}/documents:batch",
                                    {"documents": items})
            assert st == 202, raw
            job = json.loads(raw)["job_id"]
            while True:
                st, raw = admin.request("GET", f"/v1/jobs/{job}")
                j = json.loads(raw)
                if j["state"] not in ("queued", "running"):
                    assert j["state"] == "succeeded", j
                    break
                time.sleep(0.5)
        info = json.loads(admin.request("GET", f"/v1/collections/{COLL}")[1])
        print(f"seeded {args.seed_docs} documents ({info['vectors']} chunks) in "
              f"{time.monotonic() - t0:.0f} s", flush=True)

        load = Load(args.port, texts, queries, seeded, args.seed_docs, args.workers, rng)
        ramp = []
        rate = args.rate
        if rate is None:
            r, best = args.start_rate, None
            while True:
                res, _ = load.run(r, args.ramp_step_s)
                s = summarize(res)
                ramp.append((r, s))
                ok = s["5xx"] == 0 and s["errors"] == 0 and s["p99"] < args.p99_s
                print(f"ramp {r:6.1f} req/s: p50 {s['p50'] * 1e3:6.0f} ms  p99 "
                      f"{s['p99'] * 1e3:6.0f} ms  5xx {s['5xx']}  errors {s['errors']}  "
                      f"{'ok' if ok else 'over'}", flush=True)
                if not ok:
                    break
                best = r
                r = round(r * 1.4, 1)
            rate = best or args.start_rate
            time.sleep(5)  # let the backlog of the last step drain

        rows = []
        pid = srv.pid

        def tick(t, window):
            rss, anon, fds, threads = proc_sample(pid)
            s = summarize(window)
            rows.append({"t_s": round(t, 1), "requests": s["n"], "5xx": s["5xx"],
                         "errors": s["errors"], "p50_ms": round(s["p50"] * 1e3, 1),
                         "p99_ms": round(s["p99"] * 1e3, 1), "rss_mb": round(rss / 1024, 1),
                         "anon_mb": round(anon / 1024, 1),
                         "fds": fds, "threads": threads})

        print(f"run: {rate} req/s for {args.duration_s:.0f} s", flush=True)
        res, n_sent = load.run(rate, args.duration_s, tick, args.sample_s)
        load.close()
        total = summarize(res)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        csv_path = os.path.join(args.out, f"load-{stamp}.csv")
        with open(csv_path, "w") as f:
            keys = list(rows[0].keys())
            f.write(",".join(keys) + "\n")
            for r in rows:
                f.write(",".join(str(r[k]) for k in keys) + "\n")
        after = [r for r in rows if r["t_s"] >= args.warmup_s] or rows
        rss_slope = slope([r["t_s"] / 60 for r in after], [r["anon_mb"] for r in after])
        rss_mean = sum(r["anon_mb"] for r in after) / len(after)
        vm_slope = slope([r["t_s"] / 60 for r in after], [r["rss_mb"] for r in after])
        fd_lo, fd_hi = min(r["fds"] for r in after), max(r["fds"] for r in after)
        fd_slope = slope([r["t_s"] / 60 for r in after], [r["fds"] for r in after])
        info = json.loads(admin.request("GET", f"/v1/collections/{COLL}")[1])
        rss_growth = rss_slope * (args.duration_s - args.warmup_s) / 60
        passed = (total["5xx"] == 0 and total["errors"] == 0 and total["p99"] < args.p99_s
                  and abs(rss_growth) < max(0.02 * rss_mean, 5.0) and fd_hi - fd_lo <= 4)
        load_avg = os.getloadavg()
        summary = [
            f"ragd load run {stamp}: {' '.join(sys.argv)}",
            f"machine: {os.cpu_count()} CPUs, load average at the end {load_avg[0]:.1f} "
            f"{load_avg[1]:.1f} {load_avg[2]:.1f}",
            f"collection: {args.seed_docs} documents, {info['vectors']} chunks at the end",
            "ramp: " + ", ".join(f"{r:g}/s p99 {s['p99'] * 1e3:.0f} ms" for r, s in ramp),
            f"rate: {rate:g} req/s (90 % search dense/lexical/hybrid, 10 % ingest upserts), "
            f"{args.duration_s:.0f} s, {n_sent} requests sent, {total['n']} answered",
            f"latency: p50 {total['p50'] * 1e3:.0f} ms, p99 {total['p99'] * 1e3:.0f} ms; "
            f"p99 by kind (ms): " + ", ".join(f"{k} {v * 1e3:.0f}"
                                              for k, v in total["by_kind"].items()),
            f"5xx: {total['5xx']}, other errors: {total['errors']}",
            f"RSS (anonymous: heap + stacks) after {args.warmup_s:.0f} s warm-up: mean "
            f"{rss_mean:.1f} MB, slope {rss_slope:+.3f} MB/min ({rss_growth:+.1f} MB over the "
            f"rest of the run); VmRSS (with the mapped model) slope {vm_slope:+.3f} MB/min",
            f"open fds after warm-up: {fd_lo}..{fd_hi} (slope {fd_slope:+.3f}/min)",
            f"result: {'PASS' if passed else 'FAIL'} (criteria: zero 5xx and errors, p99 < "
            f"{args.p99_s:g} s, RSS growth under max(2 %, 5 MB), fd range <= 4)",
            f"csv: {csv_path}",
        ]
        curve = ascii_curve(rows, "anon_mb", "RssAnon (MB)") + "\n\n" + \
            ascii_curve(rows, "rss_mb", "VmRSS (MB)") + "\n\n" + \
            ascii_curve(rows, "fds", "open fds") + "\n\n" + \
            ascii_curve(rows, "p99_ms", "p99 per window (ms)")
        with open(os.path.join(args.out, f"load-{stamp}.txt"), "w") as f:
            f.write("\n".join(summary) + "\n\n" + curve + "\n")
        print("\n".join(summary))
        print(curve)
        return 0 if passed else 1
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(60)
        except subprocess.TimeoutExpired:
            srv.kill()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
