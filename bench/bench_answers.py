#!/usr/bin/env python3
"""Answer quality, latency and generation speed of ragd's /query on SQuAD v1.1 dev.

    python3 bench/bench_answers.py [--dataset ../shared/datasets/squad-v1.1-dev]
        [--data-dir ~/.cache/ragd/bench/squad-answers] [--quality 200] [--latency 50]
        [--modes extractive,generator] [--max-tokens 48] [--top-k 3] [--threads 2]

Starts build/ragd itself, once per mode, on --data-dir (the corpus, 2,067
paragraphs, is ingested into collection "squad" on the first run and reused
after: ingesting takes minutes). Each paragraph is a document with id
"p<_id>" and its title in the metadata.

Questions: --quality questions spread evenly over queries.jsonl (every
len/N-th, so every article is represented), asked one at a time without
streaming; the first --latency of them also give the end-to-end latency
percentiles (client wall time of each request).

Scores (standard library only):
  EM, F1        the official SQuAD v1.1 evaluation: answers lower-cased,
                punctuation and the articles a/an/the removed, white space
                collapsed; EM = normalised strings equal, F1 = token overlap
                F1; each the best over the question's gold answers. Citation
                marks "[n]" are removed from the answer first.
  cit. precision  of all citations in the answers, the share whose cited
                chunk contains a gold answer (both normalised as above).
  cited         share of answers with at least one citation.
  no_answer     share of answers that said no document answers them.
Generation speed (generator mode, streamed, on the latency questions):
  TTFT          client time from sending the request to the first token event
                (includes retrieval and prompt processing), and the server's
                own ttft_ms (generation call to first token).
  tokens/s      (completion_tokens - 1) / (time of last token - time of first
                token), per answer, then the mean over answers with >= 8 tokens.
"""
import argparse
import collections
import http.client
import json
import os
import re
import statistics
import string
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# -- SQuAD's official normalisation and scores -------------------------------

def normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(pred, gold):
    p, g = normalize(pred).split(), normalize(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def em(pred, gold):
    return float(normalize(pred) == normalize(gold))


# -- the server ----------------------------------------------------------------

class Server:
    def __init__(self, ragd, data_dir, port, extra):
        self.port = port
        self.log = open(Path(data_dir).parent / f"ragd-{port}.log", "w")
        self.proc = subprocess.Popen(
            ["nice", "-n", "10", ragd, "serve", "--data-dir", str(data_dir), "--port", str(port),
             "--set", "log.access=false", *extra], stdout=self.log, stderr=self.log,
            cwd=REPO)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if self.request("GET", "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("ragd did not become ready")

    def request(self, method, path, body=None, timeout=600):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, json.dumps(body) if body is not None else None,
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        finally:
            c.close()

    def stream(self, path, body):
        """(t_first_token, t_last_token, done event) in seconds from the send."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            t0 = time.perf_counter()
            c.request("POST", path, json.dumps({**body, "stream": True}),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                raise RuntimeError(f"stream: {r.status} {r.read()[:200]}")
            first = last = None
            event = None
            while True:
                line = r.readline()
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    now = time.perf_counter() - t0
                    if event == "token":
                        first = first if first is not None else now
                        last = now
                    elif event in ("done", "error"):
                        return first, last, json.loads(line[6:])
            raise RuntimeError("stream ended without done")
        finally:
            c.close()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(120)
        self.log.close()


def ingest(srv, dataset, n_paragraphs):
    """Puts the first n_paragraphs paragraphs (all with 0), skipping those stored."""
    status, _ = srv.request("GET", "/v1/collections/squad")
    if status != 200:
        status, body = srv.request("POST", "/v1/collections", {"name": "squad"})
        assert status == 201, body
    t0 = time.time()
    with open(dataset / "corpus.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if n_paragraphs and i >= n_paragraphs:
                break
            d = json.loads(line)
            if srv.request("GET", "/v1/collections/squad/documents/p" + d["_id"])[0] == 200:
                continue
            status, body = srv.request("POST", "/v1/collections/squad/documents",
                                       {"id": "p" + d["_id"], "text": d["text"],
                                        "metadata": {"title": d.get("title", "")}})
            assert status in (200, 201), body
            if i % 200 == 0:
                log(f"ingested {i} paragraphs, {time.time() - t0:.0f} s")
    log(f"ingest done in {time.time() - t0:.0f} s")


def pick(dataset, n, n_paragraphs):
    """n questions spread evenly over those whose paragraph is ingested."""
    qs = [json.loads(line) for line in open(dataset / "queries.jsonl", encoding="utf-8")]
    if n_paragraphs:
        ids = set()
        with open(dataset / "corpus.jsonl", encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= n_paragraphs:
                    break
                ids.add(json.loads(line)["_id"])
        qrels = {}
        with open(dataset / "qrels" / "test.tsv", encoding="utf-8") as f:
            next(f)
            for line in f:
                qid, did, _ = line.rstrip("\n").split("\t")
                qrels[qid] = did
        qs = [q for q in qs if qrels.get(q["_id"]) in ids]
    step = len(qs) / n
    return [qs[int(i * step)] for i in range(n)]


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_mode(srv, mode, questions, n_latency, args):
    ems, f1s, lat, n_cit, n_cit_ok, n_cited, n_none = [], [], [], 0, 0, 0, 0
    for i, q in enumerate(questions):
        body = {"question": q["text"], "top_k": args.top_k, "max_tokens": args.max_tokens}
        t0 = time.perf_counter()
        status, a = srv.request("POST", "/v1/collections/squad/query", body)
        dt = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise RuntimeError(f"{status} {a}")
        if i < n_latency:
            lat.append(dt)
        text = re.sub(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]", "", a["answer"]).strip()
        golds = q["answers"]
        ems.append(max(em(text, g) for g in golds))
        f1s.append(max(f1(text, g) for g in golds))
        n_none += a["kind"] == "no_answer"
        n_cited += bool(a["citations"])
        for c in a["citations"]:
            n_cit += 1
            chunk = normalize(c["text"])
            n_cit_ok += any(normalize(g) and normalize(g) in chunk for g in golds)
        if i % 20 == 0:
            log(f"{mode}: {i}/{len(questions)} EM {100 * statistics.mean(ems):.1f} "
                f"F1 {100 * statistics.mean(f1s):.1f}")
    return {
        "mode": mode, "n": len(questions), "em": 100 * statistics.mean(ems),
        "f1": 100 * statistics.mean(f1s),
        "cit_precision": 100 * n_cit_ok / n_cit if n_cit else float("nan"),
        "cited": 100 * n_cited / len(questions), "no_answer": 100 * n_none / len(questions),
        "p50": pct(lat, 50), "p95": pct(lat, 95), "n_latency": len(lat),
    }


def speed(srv, questions, args):
    ttft_client, ttft_server, rates, prompt = [], [], [], []
    for q in questions:
        first, last, done = srv.stream("/v1/collections/squad/query",
                                       {"question": q["text"], "top_k": args.top_k,
                                        "max_tokens": args.max_tokens})
        if first is None:
            continue
        ttft_client.append(first * 1000)
        ttft_server.append(done["timings"]["ttft_ms"])
        prompt.append(done["usage"]["prompt_tokens"])
        n = done["usage"]["completion_tokens"]
        if n >= 8 and last > first:
            rates.append((n - 1) / (last - first))
    return {"ttft_client_p50": pct(ttft_client, 50), "ttft_server_p50": pct(ttft_server, 50),
            "tok_s": statistics.mean(rates) if rates else float("nan"), "n": len(ttft_client),
            "prompt_tokens": statistics.mean(prompt) if prompt else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=str(REPO.parent / "shared" / "datasets" /
                                             "squad-v1.1-dev"))
    ap.add_argument("--data-dir", default=os.path.expanduser("~/.cache/ragd/bench/squad-answers"))
    ap.add_argument("--ragd", default=str(REPO / "build" / "ragd"))
    ap.add_argument("--quality", type=int, default=200)
    ap.add_argument("--latency", type=int, default=50)
    ap.add_argument("--modes", default="extractive,generator")
    ap.add_argument("--generator", default="models/SmolLM2-135M-Instruct-Q4_1.gguf")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--port", type=int, default=18391)
    ap.add_argument("--speed", type=int, default=50, help="streamed answers timed for TTFT and tokens/s")
    ap.add_argument("--paragraphs", type=int, default=0,
                    help="ingest only the first N paragraphs and ask only their questions"
                         " (0 = the whole corpus)")
    ap.add_argument("--gen-quality", type=int, default=0,
                    help="questions for the generator modes (0 = --quality)")
    args = ap.parse_args()
    dataset = Path(args.dataset)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    questions = pick(dataset, args.quality, args.paragraphs)
    results, speeds = [], None
    for mode in args.modes.split(","):
        extra = ["--set", "models.generator="] if mode == "extractive" else [
            "--set", f"models.generator={args.generator}",
            "--set", f"models.gen_threads={args.threads}", "--set", "rag.timeout_ms=0"]
        srv = Server(args.ragd, args.data_dir, args.port, extra)
        try:
            ingest(srv, dataset, args.paragraphs)
            qs = questions if mode == "extractive" or not args.gen_quality else \
                questions[::max(1, len(questions) // args.gen_quality)][:args.gen_quality]
            results.append(run_mode(srv, mode, qs, args.latency, args))
            log(json.dumps(results[-1]))
            if mode != "extractive":
                speeds = speed(srv, qs[:args.speed], args)
        finally:
            srv.stop()
    print(f"SQuAD v1.1 dev, {args.paragraphs or 2067} paragraphs ingested, questions spread "
          f"evenly over theirs, top_k {args.top_k}, max_tokens {args.max_tokens}, dense "
          f"retrieval\n")
    print("| answers | questions | EM | F1 | citation precision | cited | no_answer | "
          f"latency p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['mode']} | {r['n']} | {r['em']:.1f} | {r['f1']:.1f} | {r['cit_precision']:.1f} % | "
              f"{r['cited']:.0f} % | {r['no_answer']:.0f} % | {r['p50']:.0f} | {r['p95']:.0f} ({r['n_latency']} q) |")
    if speeds:
        print(f"\nGeneration through ragd (streamed, {speeds['n']} answers, mean prompt "
              f"{speeds['prompt_tokens']:.0f} tokens): TTFT p50 {speeds['ttft_client_p50']:.0f} ms "
              f"client-side ({speeds['ttft_server_p50']:.0f} ms from the generation call), "
              f"{speeds['tok_s']:.1f} tokens/s")


if __name__ == "__main__":
    main()
