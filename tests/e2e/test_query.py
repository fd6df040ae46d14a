"""
End-to-end tests of grounded answers, POST /v1/collections/{name}/query,
against the real binary with the real SmolLM2 generator (short max_tokens
keep them quick) and with the extractive fallback (models.generator empty):
answers with valid citations, the "not in the documents" answer, server-sent
events, a disconnect stopping the generation, 503 + Retry-After when the
generator's queue is full, conversation sessions continued by another
instance on the same data dir, 400s naming the field, and the answer cache
(a repeat is X-Cache: HIT with the same answer, also streamed; a write makes
it miss; "cache": false bypasses; sessions and temperature > 0 are not
cached).
"""
import http.client
import json
import re
import threading
import time

import pytest

from conftest import http_request

GEN_ARGS = ["--set", "models.gen_threads=1", "--set", "models.gen_ctx=1024"]
EXTRACTIVE_ARGS = ["--set", "models.generator="]

DOCS = {
    "eiffel": "The Eiffel Tower was finished in 1889 for the World Fair in Paris. "
              "It is 330 metres tall. Gustave Eiffel's company designed and built it.",
    "moon": "The Moon is Earth's only natural satellite. Apollo 11 landed on the Moon "
            "in July 1969, and Neil Armstrong was the first person to walk on it.",
    "python": "Python is a programming language created by Guido van Rossum. "
              "Its first version was released in 1991.",
}


def seed(srv):
    srv.create_collection("kb")
    for doc_id, text in DOCS.items():
        srv.add_doc("kb", text, doc_id=doc_id)
    return srv


@pytest.fixture(scope="module")
def gen(ragd_module_factory):
    return seed(ragd_module_factory(extra_args=GEN_ARGS))


@pytest.fixture(scope="module")
def extractive(ragd_module_factory):
    return seed(ragd_module_factory(extra_args=EXTRACTIVE_ARGS))


def ask(srv, body, coll="kb"):
    return srv.request("POST", f"/v1/collections/{coll}/query", body)


def metric(srv, name, labels=""):
    status, _, raw = srv.raw_request("GET", "/metrics")
    assert status == 200
    total = 0.0
    for line in raw.decode().splitlines():
        if line.startswith(name + "{" if labels else name + " ") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def check_citations(body):
    for c in body["citations"]:
        assert 1 <= c["n"] <= body["sources"]
        assert c["document_id"] in DOCS
        assert c["text"] and c["text"] in DOCS[c["document_id"]]
        assert DOCS[c["document_id"]].encode()[c["start"]:c["end"]].decode() == c["text"]
        assert isinstance(c["chunk_id"], int) and isinstance(c["score"], float)
    for n in re.findall(r"\[(\d+)\]", body["answer"]):
        assert 1 <= int(n) <= body["sources"], body["answer"]


def test_generated_answer(gen):
    status, body = ask(gen, {"question": "How tall is the Eiffel Tower?", "max_tokens": 24})
    assert status == 200, body
    assert body["kind"] == "generated"
    assert body["model"] == "SmolLM2-135M-Instruct-Q4_1"
    assert body["answer"].strip()
    assert 1 <= body["usage"]["completion_tokens"] <= 24
    assert body["usage"]["prompt_tokens"] > 20
    assert body["usage"]["total_tokens"] == (body["usage"]["prompt_tokens"]
                                             + body["usage"]["completion_tokens"])
    assert body["sources"] >= 1
    assert body["finish_reason"] in ("stop", "length")
    for k in ("retrieve_ms", "generate_ms", "ttft_ms", "queue_ms", "total_ms"):
        assert body["timings"][k] >= 0
    check_citations(body)


def test_greedy_answers_repeat(gen):
    # Past the answer cache: the generator itself repeats at temperature 0.
    q = {"question": "Who created Python?", "max_tokens": 12, "temperature": 0,
         "cache": False}
    a = ask(gen, q)[1]["answer"]
    assert ask(gen, q)[1]["answer"] == a


def test_nothing_relevant_says_so(gen):
    status, body = ask(gen, {"question": "What is the boiling point of liquid nitrogen?",
                             "max_tokens": 16})
    assert status == 200, body
    assert body["kind"] == "no_answer"
    assert "could not find" in body["answer"]
    assert body["citations"] == []
    assert body["usage"]["completion_tokens"] == 0


def read_events(resp, stop_after=None):
    """Parses SSE events from a response: [(event, data)]."""
    events, event, data = [], None, []
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and event:
            events.append((event, json.loads("\n".join(data))))
            event, data = None, []
            if (stop_after and len(events) >= stop_after) or events[-1][0] in ("done", "error"):
                break
    return events


def open_stream(srv, body):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    conn.request("POST", "/v1/collections/kb/query", json.dumps({**body, "stream": True}),
                 {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def test_stream_tokens_then_done(gen):
    conn, resp = open_stream(gen, {"question": "When did Apollo 11 land on the Moon?",
                                   "max_tokens": 20})
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "text/event-stream"
        events = read_events(resp)
    finally:
        conn.close()
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert set(kinds[:-1]) == {"token"}, kinds
    done = events[-1][1]
    streamed = "".join(d["text"] for e, d in events if e == "token")
    assert len(kinds) - 1 <= 20
    if done["invalid_citations"] == 0:
        assert streamed == done["answer"]
    assert done["usage"]["completion_tokens"] >= len(kinds) - 1
    check_citations(done)


def test_disconnect_stops_generation(gen):
    cancelled = 'kind="generated",finish_reason="cancelled"'
    before = metric(gen, "ragd_answers_total", cancelled)
    tokens_before = metric(gen, "ragd_generation_completion_tokens_total")
    conn, resp = open_stream(gen, {"question": "Write a long essay about the Eiffel Tower.",
                                   "max_tokens": 400})
    assert resp.status == 200
    assert read_events(resp, stop_after=2)[0][0] == "token"
    conn.sock.shutdown(2)
    conn.close()
    deadline = time.time() + 60
    while time.time() < deadline and metric(gen, "ragd_answers_total", cancelled) == before:
        time.sleep(0.2)
    assert metric(gen, "ragd_answers_total", cancelled) == before + 1
    made = metric(gen, "ragd_generation_completion_tokens_total") - tokens_before
    assert made < 200, made  # stopped early, far short of max_tokens


def test_stream_error_before_first_token_is_plain_json(gen):
    conn, resp = open_stream(gen, {"question": "  ", "max_tokens": 5})
    try:
        assert resp.status == 400
        assert json.loads(resp.read())["error"]["field"] == "question"
    finally:
        conn.close()


@pytest.mark.parametrize("body,field", [
    ({}, "question"),
    ({"question": 7}, "question"),
    ({"question": ""}, "question"),
    ({"question": "x", "top_k": 0}, "top_k"),
    ({"question": "x", "top_k": "5"}, "top_k"),
    ({"question": "x", "mode": "fuzzy"}, "mode"),
    ({"question": "x", "filters": [1]}, "filters"),
    ({"question": "x", "filters": {"a": {"$bad": 1}}}, "filters"),
    ({"question": "x", "stream": "yes"}, "stream"),
    ({"question": "x", "max_tokens": 0}, "max_tokens"),
    ({"question": "x", "max_tokens": 10**6}, "max_tokens"),
    ({"question": "x", "temperature": -1}, "temperature"),
    ({"question": "x", "temperature": "hot"}, "temperature"),
    ({"question": "x", "session_id": "no spaces please"}, "session_id"),
    ({"question": "x", "session_id": 12}, "session_id"),
    ({"question": "x", "colour": "red"}, "colour"),
    ({"question": "x", "cache": "no"}, "cache"),
])
def test_bad_bodies_name_the_field(extractive, body, field):
    status, resp = ask(extractive, body)
    assert status == 400, resp
    assert resp["error"]["field"] == field, resp


def test_unknown_collection_404(extractive):
    status, body = ask(extractive, {"question": "anything"}, coll="nope")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_extractive_answer_cites_sentences(extractive):
    status, body = ask(extractive, {"question": "How tall is the Eiffel Tower?"})
    assert status == 200, body
    assert body["kind"] == "extractive" and body["model"] == "extractive"
    assert "330 metres" in body["answer"]
    assert re.search(r"\[\d\]", body["answer"])
    assert [c["document_id"] for c in body["citations"]][0] == "eiffel"
    check_citations(body)


def test_extractive_stream(extractive):
    conn, resp = open_stream(extractive, {"question": "Who created Python?"})
    try:
        events = read_events(resp)
    finally:
        conn.close()
    assert [e for e, _ in events] == ["token", "done"]
    assert "Guido van Rossum" in events[-1][1]["answer"]


def test_extractive_filters(extractive):
    status, body = ask(extractive, {"question": "When was it released or finished?",
                                    "filters": {"nope": "x"}})
    assert status == 200 and body["kind"] == "no_answer", body


def test_session_continued_by_another_instance(extractive, ragd_factory):
    """The history lives in the store: a second process on the same data dir
    continues the session, and the follow-up is made standalone."""
    status, first = ask(extractive, {"question": "When was the Eiffel Tower finished?",
                                     "session_id": "trip-1"})
    assert status == 200 and first["session_id"] == "trip-1"
    assert "1889" in first["answer"]
    other = ragd_factory(extra_args=EXTRACTIVE_ARGS, data_dir=extractive.data_dir)
    status, second = ask(other, {"question": "How tall is it?", "session_id": "trip-1"})
    assert status == 200, second
    assert second["query"] == "When was the Eiffel Tower finished? How tall is it?"
    assert "330 metres" in second["answer"]
    # A session nobody used before starts fresh.
    status, fresh = ask(other, {"question": "How tall is it?", "session_id": "trip-2"})
    assert fresh["query"] == "How tall is it?"


def test_session_rewrite_with_generator(gen):
    status, first = ask(gen, {"question": "When was the Eiffel Tower finished?",
                              "session_id": "g1", "max_tokens": 12})
    assert status == 200, first
    status, second = ask(gen, {"question": "And how tall is it?", "session_id": "g1",
                               "max_tokens": 12})
    assert status == 200, second
    assert second["query"].strip()
    assert second["timings"]["rewrite_ms"] > 0


def test_full_queue_answers_503_with_retry_after(ragd_factory):
    srv = seed(ragd_factory(extra_args=GEN_ARGS + ["--set", "models.gen_contexts=1",
                                                   "--set", "models.gen_queue=1"]))
    results = []
    lock = threading.Lock()

    def one():
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=180)
        try:
            conn.request("POST", "/v1/collections/kb/query",
                         json.dumps({"question": "Write an essay about the Moon landing.",
                                     "max_tokens": 48}),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = json.loads(resp.read())
            with lock:
                results.append((resp.status, resp.getheader("Retry-After"), body))
        finally:
            conn.close()

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    statuses = sorted(s for s, _, _ in results)
    assert len(statuses) == 5
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    assert set(statuses) <= {200, 503}, results
    for status, retry_after, body in results:
        if status == 503:
            assert body["error"]["code"] == "unavailable"
            assert retry_after == "1"
        else:
            assert body["kind"] == "generated"
    assert metric(srv, "queue_size") == 0


def test_generator_load_time_metric(gen):
    assert metric(gen, "model_loading_time_ms_count") >= 2  # embedder and generator


def test_sigterm_during_stream_exits_cleanly(ragd_factory):
    """libmicrohttpd aborts when stopped with a suspended connection: streams
    are cancelled first, and the exit status is 0."""
    srv = seed(ragd_factory(extra_args=GEN_ARGS + ["--set", "server.shutdown_timeout_s=1"]))
    conn, resp = open_stream(srv, {"question": "Write a long essay about the Moon.",
                                   "max_tokens": 400})

    def wait_in_queue():
        try:
            http_request("127.0.0.1", srv.port, "POST", "/v1/collections/kb/query",
                         {"question": "Write a long essay about Python.", "max_tokens": 400})
        except OSError:
            pass  # cut by the shutdown: what this test does

    waiting = threading.Thread(target=wait_in_queue)
    try:
        assert resp.status == 200
        assert read_events(resp, stop_after=1)[0][0] == "token"
        waiting.start()
        time.sleep(0.3)
        assert srv.stop() == 0
    finally:
        conn.close()
        waiting.join(60)


def ask_cached(srv, body, coll="kb"):
    """(status, body, X-Cache header or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    try:
        conn.request("POST", f"/v1/collections/{coll}/query", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), resp.getheader("X-Cache")
    finally:
        conn.close()


def answer_counts(srv):
    return (metric(srv, "ragd_cache_hits_total", 'cache="answer"'),
            metric(srv, "ragd_cache_misses_total", 'cache="answer"'),
            metric(srv, "ragd_cache_bypass_total", 'cache="answer",reason="request"'))


def same_answer(a, b):
    for k in ("answer", "citations", "kind", "model", "query", "finish_reason", "sources",
              "invalid_citations", "usage"):
        assert a[k] == b[k], k


def check_answer_cache(srv, coll, q):
    """A repeat is a hit with the same answer; a write makes it miss; cache: false bypasses."""
    hits, misses, bypass = answer_counts(srv)
    status, first, x = ask_cached(srv, q, coll)
    assert status == 200, first
    assert x == "MISS"
    status, again, x = ask_cached(srv, q, coll)
    assert status == 200 and x == "HIT"
    same_answer(first, again)
    assert again["timings"]["generate_ms"] == 0
    assert answer_counts(srv) == (hits + 1, misses + 1, bypass)
    status, fresh, x = ask_cached(srv, {**q, "cache": False}, coll)
    assert status == 200 and x == "BYPASS"
    assert answer_counts(srv) == (hits + 1, misses + 1, bypass + 1)
    # Any other input is another key.
    assert ask_cached(srv, {**q, "top_k": 2}, coll)[2] == "MISS"
    srv.add_doc(coll, "The Louvre in Paris is the most visited museum in the world.",
                doc_id="louvre")
    status, after, x = ask_cached(srv, q, coll)
    assert status == 200 and x == "MISS"
    assert ask_cached(srv, q, coll)[2] == "HIT"
    return first


def test_answer_cache_generated(gen):
    gen.create_collection("cached")
    for doc_id, text in DOCS.items():
        gen.add_doc("cached", text, doc_id=doc_id)
    q = {"question": "Who designed the Eiffel Tower?", "max_tokens": 12, "temperature": 0}
    first = check_answer_cache(gen, "cached", q)
    assert first["kind"] == "generated"
    # Another max_tokens is another answer.
    assert ask_cached(gen, {**q, "max_tokens": 11}, "cached")[2] == "MISS"


def test_answer_cache_extractive(extractive):
    extractive.create_collection("cached")
    for doc_id, text in DOCS.items():
        extractive.add_doc("cached", text, doc_id=doc_id)
    first = check_answer_cache(extractive, "cached", {"question": "Who created Python?"})
    assert first["kind"] == "extractive"


def test_answer_cache_hit_streams_like_a_fresh_answer(gen):
    q = {"question": "What did Neil Armstrong do?", "max_tokens": 10}
    status, first, x = ask_cached(gen, q)
    assert status == 200 and x == "MISS"
    conn, resp = open_stream(gen, q)
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "text/event-stream"
        events = read_events(resp)
    finally:
        conn.close()
    assert [e for e, _ in events] == ["token", "done"]
    assert events[0][1] == {"text": first["answer"]}
    same_answer(first, events[1][1])


def test_answer_cache_skips_sessions_and_sampling(gen):
    hits, misses, bypass = answer_counts(gen)
    for q in ({"question": "When was Python first released?", "max_tokens": 6,
               "session_id": "cache-1"},
              {"question": "When was Python first released?", "max_tokens": 6,
               "temperature": 0.7}):
        for _ in range(2):
            status, body, x = ask_cached(gen, q)
            assert status == 200, body
            assert x is None
    assert answer_counts(gen) == (hits, misses, bypass)
