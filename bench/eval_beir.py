#!/usr/bin/env python3
"""Retrieval quality of ragd on BEIR-format datasets: nDCG@10, Recall@100, MRR@10.

    python3 bench/eval_beir.py --dataset scifact [--modes dense,lexical,hybrid]
                               [--max-queries N] [--clients 2] [--keep-data DIR]
    python3 bench/eval_beir.py --self-test

Starts its own ragd (build/ragd, models/all-MiniLM-L6-v2.gguf) on a temporary
data directory, or on --keep-data DIR, where a collection ingested by an
earlier run is reused instead of ingested again. Each document is sent as
title + "\\n\\n" + text under the id "d" + its BEIR _id (ids that would not be
valid ragd ids get a hashed one; the BEIR id is kept in the metadata too).
Then each search mode is run over the judged queries (those in
qrels/test.tsv; score > 0 means relevant), one query at a time, asking for
--top-k chunks; chunk hits are folded into a document ranking (a document's
rank is that of its best chunk, so its score is its best chunk's score).
Prints a Markdown table and the published reference numbers to stdout,
progress to stderr. --dataset takes several names, comma separated, each
in its own collection on the same server.

Metrics (written here, standard library only; they follow BEIR/pytrec_eval):
  nDCG@10    sum over the top 10 of gain / log2(rank + 1), gain = qrels score
             (graded, linear as in trec_eval), divided by the same sum for
             the ideal ordering of the query's judged documents.
  Recall@100 relevant documents in the top 100 / relevant documents.
  MRR@10     1 / rank of the first relevant document in the top 10, else 0.
Unlike BEIR's evaluate(), a document whose id equals the query id is not
dropped (BEIR's ignore_identical_ids; it matters only for adi, cranfield and
medline, where such documents are genuinely judged relevant).

If the server rejects the "mode" field (an older ragd), dense mode is run
without it and the other modes are skipped, with a note in the output.
"""
import argparse
import collections
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = os.environ.get("RAGD_DATASETS", os.path.join(ROOT, "..", "shared", "datasets"))
RAGD = os.path.join(ROOT, "build", "ragd")
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2.gguf")
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MARKER = "eval_beir-%s.json"  # in the data dir: written once a collection is fully ingested

# Published / reference numbers, from ../shared/datasets/README.md and each SOURCE.md.
REFERENCE = {
    "scifact": [
        ("BM25, BEIR paper", "nDCG@10 0.665"),
        ("all-MiniLM-L6-v2 (dense), published BEIR", "nDCG@10 ≈ 0.645"),
        ("plain BM25 (k1 0.9, b 0.4, title + text), datasets README", "nDCG@10 0.661, R@100 0.886"),
    ],
    "nfcorpus-test-preprocessed": [
        ("plain BM25 on this preprocessed text, datasets README", "nDCG@10 0.322"),
        ("BM25 on BEIR's raw text, BEIR paper", "nDCG@10 0.325"),
        ("note", "text is lower-cased and stop-word stripped: dense numbers are not comparable"),
    ],
    "cranfield": [("plain BM25, datasets README", "nDCG@10 0.335, R@100 0.701")],
    "medline": [("plain BM25, datasets README", "nDCG@10 0.678, R@100 0.787")],
    "adi": [("plain BM25, datasets README", "nDCG@10 0.424")],
    "squad-v1.1-dev": [("plain BM25, datasets README", "nDCG@10 0.868, R@100 0.990")],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- metrics

def dcg(gains):
    """Discounted cumulative gain of gains listed best rank first (rank 1 -> log2(2))."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked, qrel, k=10):
    """ranked: document ids best first; qrel: {doc id: score}, score > 0 relevant."""
    ideal = dcg(sorted((s for s in qrel.values() if s > 0), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([max(qrel.get(d, 0), 0) for d in ranked[:k]]) / ideal


def recall_at_k(ranked, qrel, k=100):
    rel = {d for d, s in qrel.items() if s > 0}
    return len(rel.intersection(ranked[:k])) / len(rel) if rel else 0.0


def mrr_at_k(ranked, qrel, k=10):
    for i, d in enumerate(ranked[:k]):
        if qrel.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def docs_from_chunks(results, to_beir):
    """Folds chunk hits (best first) into document ids ranked by their best chunk."""
    best = {}
    for rank, r in enumerate(results):
        d = to_beir.get(r["document_id"], r["document_id"])
        score = r.get("score", 0.0)
        if d not in best:
            best[d] = (score, rank)
        elif score > best[d][0]:  # only if the server's order were not by score
            best[d] = (score, best[d][1])
    return sorted(best, key=lambda d: (-best[d][0], best[d][1]))


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def self_test():
    """Checks the metrics against numbers worked out by hand."""
    close = lambda a, b: abs(a - b) < 1e-9
    # Judged: d2 gain 2, d3 gain 1, d5 gain 3 (d5 never retrieved), d9 score 0.
    qrel = {"d2": 2, "d3": 1, "d5": 3, "d9": 0}
    ranked = ["d1", "d2", "d3", "d9"]
    # DCG  = 0/log2(2) + 2/log2(3) + 1/log2(4) + 0/log2(5) = 1.2618595 + 0.5 = 1.7618595
    # IDCG = 3/log2(2) + 2/log2(3) + 1/log2(4)              = 3 + 1.2618595 + 0.5 = 4.7618595
    # nDCG = 1.7618595 / 4.7618595 = 0.3699940
    want = (2 / 1.5849625007211562 + 0.5) / (3 + 2 / 1.5849625007211562 + 0.5)
    checks = [
        ("nDCG@10 graded example", ndcg_at_k(ranked, qrel), want),
        ("nDCG@10 graded example, 4 d.p.", round(ndcg_at_k(ranked, qrel), 4), 0.3700),
        ("nDCG@10 ideal order", ndcg_at_k(["d5", "d2", "d3"], qrel), 1.0),
        ("nDCG@10 nothing relevant", ndcg_at_k(["d1", "d9"], qrel), 0.0),
        # Binary: relevant at ranks 1 and 3 of 2 relevant -> (1 + 1/2) / (1 + 1/log2(3))
        ("nDCG@10 binary", ndcg_at_k(["a", "x", "b"], {"a": 1, "b": 1}), 1.5 / (1 + 1 / 1.5849625007211562)),
        # Relevant only at rank 11: outside the cut.
        ("nDCG@10 cut at 10", ndcg_at_k(["x%d" % i for i in range(10)] + ["a"], {"a": 1}), 0.0),
        ("Recall@100 2 of 3", recall_at_k(ranked, qrel), 2 / 3),
        ("Recall@100 cut at 100", recall_at_k(["x%d" % i for i in range(100)] + ["a"], {"a": 1}), 0.0),
        ("MRR@10 first relevant at rank 2", mrr_at_k(ranked, qrel), 0.5),
        ("MRR@10 none in top 10", mrr_at_k(["x%d" % i for i in range(10)] + ["d2"], qrel), 0.0),
    ]
    # Chunk folding: a document ranks by its best (first) chunk, ids are mapped back.
    chunks = [{"document_id": "dA", "score": 0.9}, {"document_id": "dB", "score": 0.8},
              {"document_id": "dA", "score": 0.7}, {"document_id": "dC", "score": 0.6}]
    folded = docs_from_chunks(chunks, {"dA": "A", "dB": "B", "dC": "C"})
    ok = True
    for name, got, exp in checks:
        good = close(got, exp)
        ok &= good
        print("%-34s got %.7f want %.7f %s" % (name, got, exp, "ok" if good else "FAIL"))
    good = folded == ["A", "B", "C"]
    ok &= good
    print("%-34s got %s %s" % ("chunks folded to documents", folded, "ok" if good else "FAIL"))
    print("self-test", "passed" if ok else "FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------- data

def dataset_dir(name):
    return name if os.path.isdir(name) else os.path.join(DATASETS, name)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_dataset(name):
    d = dataset_dir(name)
    corpus = read_jsonl(os.path.join(d, "corpus.jsonl"))
    queries = {q["_id"]: q["text"] for q in read_jsonl(os.path.join(d, "queries.jsonl"))}
    qrels = collections.OrderedDict()
    with open(os.path.join(d, "qrels", "test.tsv"), encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:3] != ["query-id", "corpus-id", "score"]:
            raise SystemExit("%s: unexpected qrels header %r" % (name, header))
        for line in f:
            if not line.strip():
                continue
            q, doc, score = line.rstrip("\n").split("\t")[:3]
            qrels.setdefault(q, {})[doc] = int(float(score))
    judged = [q for q, rel in qrels.items() if any(s > 0 for s in rel.values())]
    missing = [q for q in judged if q not in queries]
    if missing:
        raise SystemExit("%s: %d judged queries are not in queries.jsonl (e.g. %s)"
                         % (name, len(missing), missing[0]))
    return corpus, queries, qrels, judged


def ragd_id(beir_id):
    rid = "d" + beir_id
    if ID_RE.match(rid):
        return rid
    return "h" + hashlib.sha1(beir_id.encode("utf-8")).hexdigest()


def collection_name(dataset):
    base = os.path.basename(os.path.normpath(dataset))
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", base)
    if not name[:1].isalnum():
        name = "c" + name
    return name[:64]


# ---------------------------------------------------------------- server

class Client:
    """One keep-alive HTTP connection (one per thread); reconnects after an error."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, method, path, body=None):
        data = json.dumps(body).encode("utf-8") if body is not None else None
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            try:
                self.conn.request(method, path, body=data,
                                  headers={"Content-Type": "application/json"} if data else {})
                r = self.conn.getresponse()
                raw = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = {"raw": raw.decode("utf-8", "replace")}
                return r.status, parsed
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, data_dir, port):
    log_path = os.path.join(data_dir, "eval_beir-ragd.log")
    logf = open(log_path, "ab")
    cmd = [args.ragd, "serve", "--data-dir", data_dir, "--port", str(port), "--model", args.model,
           "--log-level", "warn", "--set", "log.access=false"]
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    c = Client(port)
    deadline = time.time() + args.ready_timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            if c.call("GET", "/ready")[0] == 200:
                c.close()
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    with open(log_path, "rb") as f:
        tail = f.read()[-2000:].decode("utf-8", "replace")
    raise SystemExit("ragd did not become ready (%s); log tail:\n%s" % (" ".join(cmd), tail))


def stop_server(proc):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        log("ragd did not exit 60 s after SIGTERM; killing it")
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- ingest

def ensure_collection(client, name, args, data_dir, n_docs):
    """Returns (ingest info from an earlier run, or None when documents must be sent)."""
    marker = os.path.join(data_dir, MARKER % name)
    status, body = client.call("GET", "/v1/collections/%s" % name)
    if status == 200:
        if (body.get("chunk_size"), body.get("chunk_overlap")) != (args.chunk_size, args.chunk_overlap):
            raise SystemExit("collection %s in %s has chunk_size %s / overlap %s, not %d / %d; "
                             "use another --keep-data dir" % (name, data_dir, body.get("chunk_size"),
                                                             body.get("chunk_overlap"),
                                                             args.chunk_size, args.chunk_overlap))
        if os.path.exists(marker):
            with open(marker) as f:
                info = json.load(f)
            if info.get("docs") == n_docs:
                log("%s: reusing the collection ingested earlier in %s (%d docs, %d vectors)"
                    % (name, data_dir, n_docs, body.get("vectors", -1)))
                return info
        log("%s: collection exists in %s but was not fully ingested; sending missing documents"
            % (name, data_dir))
        return None
    if status != 404:
        raise SystemExit("GET collection %s: %s %s" % (name, status, body))
    status, body = client.call("POST", "/v1/collections", {
        "name": name, "chunk_size": args.chunk_size, "chunk_overlap": args.chunk_overlap})
    if status not in (200, 201):
        raise SystemExit("create collection %s: %s %s" % (name, status, body))
    return None


def ingest(port, name, corpus, clients, resume):
    """Sends the documents from `clients` threads. Returns (seconds, chunks, docs sent)."""
    docs = []
    for doc in corpus:
        title, text = (doc.get("title") or "").strip(), (doc.get("text") or "").strip()
        body = title + "\n\n" + text if title and text else title or text
        if not body:
            log("%s: skipping empty document %s" % (name, doc["_id"]))
            continue
        docs.append({"id": ragd_id(doc["_id"]), "text": body, "metadata": {"beir_id": doc["_id"]}})
    if resume:
        c = Client(port)
        docs = [d for d in docs
                if c.call("GET", "/v1/collections/%s/documents/%s" % (name, d["id"]))[0] != 200]
        c.close()
        log("%s: %d documents still to send" % (name, len(docs)))
    lock = threading.Lock()
    state = {"done": 0, "chunks": 0, "errors": []}
    t0 = time.perf_counter()
    path = "/v1/collections/%s/documents" % name

    def worker(i):
        c = Client(port)
        try:
            for d in docs[i::clients]:
                if state["errors"]:
                    return
                status, body = c.call("POST", path, d)
                with lock:
                    if status not in (200, 201):
                        state["errors"].append("%s: %s %s" % (d["id"], status, body))
                        return
                    state["chunks"] += body.get("chunks", 0)
                    state["done"] += 1
                    if state["done"] % 500 == 0:
                        el = time.perf_counter() - t0
                        log("%s: ingested %d/%d docs, %d chunks, %.0f s, %.1f docs/s"
                            % (name, state["done"], len(docs), state["chunks"], el,
                               state["done"] / el))
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                state["errors"].append("%s: %r" % (threading.current_thread().name, e))
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,), name="ingest-%d" % i)
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["errors"]:
        raise SystemExit("ingest failed: %s" % state["errors"][0])
    return time.perf_counter() - t0, state["chunks"], len(docs)


# ---------------------------------------------------------------- search

def probe_modes(client, name, modes):
    """Returns (modes to run as [(label, mode field or None)], notes)."""
    path = "/v1/collections/%s/search" % name
    status, body = client.call("POST", path, {"query": "test", "top_k": 1, "mode": "dense"})
    err = (body or {}).get("error") or {}
    if status == 400 and "unknown field 'mode'" in err.get("message", ""):
        others = [m for m in modes if m != "dense"]
        said = ["dense ran without it"] if "dense" in modes else []
        said += ["skipped: " + ", ".join(others)] if others else []
        notes = ["this ragd rejects the `mode` field (400 unknown field 'mode'): " + "; ".join(said)]
        return ([("dense", None)] if "dense" in modes else []), notes
    run, notes = [], []
    for m in modes:
        status, body = client.call("POST", path, {"query": "test", "top_k": 1, "mode": m})
        if status == 200:
            run.append((m, m))
        else:
            notes.append("mode %s skipped: server answered %s %s" % (m, status, json.dumps(body)))
    return run, notes


def run_mode(port, name, mode_field, judged, queries, qrels, top_k, to_beir):
    c = Client(port)
    path = "/v1/collections/%s/search" % name
    per_q, lat, n_docs, empty = [], [], [], 0
    for qid in judged:
        req = {"query": queries[qid], "top_k": top_k}
        if mode_field is not None:
            req["mode"] = mode_field
        t0 = time.perf_counter()
        status, body = c.call("POST", path, req)
        lat.append((time.perf_counter() - t0) * 1000.0)
        if status != 200:
            raise SystemExit("search %s (query %s): %s %s" % (mode_field, qid, status, body))
        ranked = docs_from_chunks(body.get("results", []), to_beir)
        if not ranked:
            empty += 1
        n_docs.append(len(ranked))
        rel = qrels[qid]
        per_q.append((ndcg_at_k(ranked, rel, 10), recall_at_k(ranked, rel, 100), mrr_at_k(ranked, rel, 10)))
    c.close()
    n = len(per_q)
    return {
        "ndcg": sum(x[0] for x in per_q) / n, "recall": sum(x[1] for x in per_q) / n,
        "mrr": sum(x[2] for x in per_q) / n, "queries": n, "p50": statistics.median(lat),
        "p99": pct(lat, 99), "min_docs": min(n_docs), "median_docs": statistics.median(n_docs),
        "empty": empty,
    }


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", help="name under %s (or a path); several, comma separated" % DATASETS)
    ap.add_argument("--modes", default="dense,lexical,hybrid")
    ap.add_argument("--max-queries", type=int, default=0, help="first N judged queries (0 = all)")
    ap.add_argument("--clients", type=int, default=2, help="concurrent ingest clients")
    ap.add_argument("--keep-data", metavar="DIR", help="data dir to keep and reuse (else a temp dir)")
    ap.add_argument("--top-k", type=int, default=200, help="chunks asked for per query (1..1000)")
    ap.add_argument("--chunk-size", type=int, default=128)
    ap.add_argument("--chunk-overlap", type=int, default=16)
    ap.add_argument("--port", type=int, default=0, help="0 = a free port")
    ap.add_argument("--ragd", default=RAGD)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    ap.add_argument("--self-test", action="store_true", help="check the metrics, then exit")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.dataset:
        ap.error("--dataset is required (or --self-test)")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()]

    if args.keep_data:
        data_dir = os.path.abspath(args.keep_data)
        os.makedirs(data_dir, exist_ok=True)
    else:
        data_dir = tempfile.mkdtemp(prefix="eval_beir-")
    port = args.port or free_port()
    t_start = time.perf_counter()
    proc = start_server(args, data_dir, port)
    log("ragd ready on port %d, data dir %s (%.1f s)" % (port, data_dir, time.perf_counter() - t_start))
    rows, ingest_lines, notes = [], [], []
    try:
        client = Client(port)
        for ds in datasets:
            corpus, queries, qrels, judged = load_dataset(ds)
            if args.max_queries > 0:
                judged = judged[:args.max_queries]
            name = collection_name(ds)
            to_beir = {ragd_id(d["_id"]): d["_id"] for d in corpus}
            log("%s: %d docs, %d judged queries" % (name, len(corpus), len(judged)))
            info = ensure_collection(client, name, args, data_dir, len(corpus))
            if info is None:
                resume = os.path.exists(os.path.join(data_dir, MARKER % name)) or \
                    client.call("GET", "/v1/collections/%s" % name)[1].get("vectors", 0) > 0
                secs, chunks, sent = ingest(port, name, corpus, args.clients, resume)
                info = {"dataset": ds, "docs": len(corpus), "sent": sent, "chunks": chunks,
                        "ingest_s": round(secs, 1), "clients": args.clients, "resumed": resume,
                        "when": time.strftime("%Y-%m-%d %H:%M:%S")}
                with open(os.path.join(data_dir, MARKER % name), "w") as f:
                    json.dump(info, f)
                ingest_lines.append("%s: ingested %d docs (%d chunks) in %.1f s with %d clients "
                                    "(%.1f docs/s)%s" % (ds, sent, chunks, secs, args.clients,
                                                         sent / secs if secs else 0,
                                                         ", resumed" if resume else ""))
            else:
                ingest_lines.append("%s: reused the collection in %s (ingested %s: %d docs, %d chunks "
                                    "in %.1f s with %d clients)"
                                    % (ds, data_dir, info.get("when", "earlier"), info["docs"],
                                       info["chunks"], info["ingest_s"], info["clients"]))
            log(ingest_lines[-1])
            run, mode_notes = probe_modes(client, name, modes)
            notes += ["%s: %s" % (ds, n) for n in mode_notes]
            for label, field in run:
                t0 = time.perf_counter()
                r = run_mode(port, name, field, judged, queries, qrels, args.top_k, to_beir)
                log("%s %s: nDCG@10 %.4f R@100 %.4f MRR@10 %.4f (%d queries, %.1f s)"
                    % (ds, label, r["ndcg"], r["recall"], r["mrr"], r["queries"],
                       time.perf_counter() - t0))
                if r["empty"]:
                    notes.append("%s %s: %d queries returned no results" % (ds, label, r["empty"]))
                if r["min_docs"] < 100 and r["median_docs"] >= 100:
                    pass  # a few short lists are normal (e.g. lexical: few matching words)
                elif r["median_docs"] < 100 and len(corpus) >= 100:
                    notes.append("%s %s: median %d distinct documents per query from %d chunks "
                                 "(< 100: Recall@100 is cut short)" % (ds, label, r["median_docs"],
                                                                       args.top_k))
                rows.append((ds, label if field is not None else label + " (no mode field)", r))
        client.close()
    finally:
        stop_server(proc)
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)

    cmd = "python3 bench/eval_beir.py " + " ".join(sys.argv[1:])
    print("Run: `%s` (ragd %s, chunk_size %d / overlap %d, top_k %d chunks per query folded to "
          "documents by best chunk; one query at a time)\n" % (cmd, os.path.basename(args.model),
                                                               args.chunk_size, args.chunk_overlap,
                                                               args.top_k))
    print("| dataset | mode | nDCG@10 | Recall@100 | MRR@10 | queries | p50 latency ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for ds, label, r in rows:
        print("| %s | %s | %.4f | %.4f | %.4f | %d | %.2f |" % (ds, label, r["ndcg"], r["recall"],
                                                               r["mrr"], r["queries"], r["p50"]))
    print()
    print("Ingest:")
    for line in ingest_lines:
        print("- " + line)
    print()
    print("Reference numbers (not run here):")
    for ds in datasets:
        for who, what in REFERENCE.get(os.path.basename(os.path.normpath(ds)), []):
            print("- %s, %s: %s" % (ds, who, what))
    if notes:
        print()
        print("Notes:")
        for n in notes:
            print("- " + n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
